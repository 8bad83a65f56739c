"""Metric functions over plain tensors and arrays. Embeddings are L2-normalised float32.

Definitions follow DESIGN.md section 4 and CLIP_benchmark:
- acc@k: fraction of images whose label is among the k highest logits (k capped at the class count).
- mean_per_class_recall: balanced accuracy of the argmax (sklearn), over the classes that have test images,
  the argmax taken among those classes only (ELEVATER's rule, see `balanced_accuracy_present`).
- text->image R@K: fraction of captions whose image is among the K most similar images.
- image->text R@K: fraction of images with at least one of their captions among the K most similar captions.
Ties (equal scores: duplicated captions or images, quantised embeddings) are broken towards the LOWER index,
deterministically: an item's zero-based rank is the number of items scoring strictly higher plus the number
scoring equal at a lower index. (torch.topk's order among equal values is unspecified.) Retrieval is computed
in chunks of queries, so memory stays O(chunk x gallery).
The protocol setting tie_rule = "topk-per-k" (CLIP_benchmark) instead makes the same torch calls as CLIP_benchmark
1.6.2 (LAION-AI/CLIP_benchmark @ b4b6a33c8dc01fe44acf24f24f71ac7585d52571, clip_benchmark/metrics/): retrieval one
torch.topk per K (zeroshot_retrieval.py recall_at_k), classification one topk of the widest k (zeroshot_classification.py
accuracy), average precision torch.sort (average_precision_per_class); see `topk_found`, `top_classes`,
`average_precision_per_class`. torch's choice among equal scores on the CPU depends only on the row's values
and k, not on the other rows, so chunking the queries keeps it.
The task kinds (benchmark/kinds/) say which of these make each metric and how its queries are resampled.

torch, sklearn and scipy are imported inside the functions that use them, so that the metric records, which
the task loader and the tables read, load without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

RECALL_KS = (1, 5, 10)


def classifier_logits(image_emb: torch.Tensor, classifier: torch.Tensor) -> torch.Tensor:
    """100 * cosine similarity, in float32."""
    return 100.0 * image_emb.float() @ classifier.float().T


def fraction(hits) -> float:
    """Mean of a boolean tensor or array as an exact count ratio in double precision (no float32 rounding).
    NaN entries (an outcome left undefined: CLIP_benchmark's acc5 below 5 classes) make it NaN."""
    n = hits.numel() if hasattr(hits, "numel") else hits.size
    if not n:
        return float("nan")
    total = hits.sum()
    return int(total) / n if total == total else float("nan")


def rank_of(scores: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Zero-based rank of item `index[q]` in row q of `scores`, ties broken towards the lower index. An index with
    no column (a class beyond a published list that is short of names) ranks last: scores.shape[1]."""
    import torch

    index = index.to(scores.device).long().view(-1, 1)
    width = scores.shape[1]
    inside = index < width
    target = scores.gather(1, index.clamp(max=width - 1))
    position = torch.arange(width, device=scores.device)
    rank = (scores > target).sum(dim=1) + ((scores == target) & (position < index)).sum(dim=1)
    return torch.where(inside.view(-1), rank, torch.full_like(rank, width))


def topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per sample: True where the label is among the top-k logits (k capped at the number of classes)."""
    return rank_of(logits, labels) < k


def top_classes(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best classes of each row, best first, and their logits, as CLIP_benchmark's accuracy() takes them
    (zeroshot_classification.py: output.topk(max(topk), 1, True, True)): torch's own order among equal logits."""
    found = logits.topk(min(k, logits.shape[1]), 1, True, True)
    return found.indices, found.values


def topk_found_in(top: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per sample: True where the label is among the first k of `top` (`top_classes` of the widest k counted:
    CLIP_benchmark's correct[:k] of one topk, so acc1 reads the first of the same topk that acc5 reads)."""
    return (top[:, :k] == labels.to(top.device).view(-1, 1)).any(dim=1)


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """The argmax of each row; torch documents that it returns the first (lowest) index among equal maxima."""
    return logits.argmax(dim=1)


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    return fraction(topk_hits(logits, labels, k))


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(labels, predicted))


def balanced_accuracy_present(labels: np.ndarray, predicted: np.ndarray, logits: np.ndarray) -> float:
    """Mean per-class recall as ELEVATER computes it: classes with no test image are dropped before the
    argmax, so an image whose best class has no test image counts with its best class that has one.

    ELEVATER (Computer-Vision-in-the-Wild/Elevater_Toolkit_IC @ 00d0af7, vision_benchmark/evaluation/metric.py)
    scores "mean-per-class" with vision-evaluation's BalancedAccuracyScoreEvaluator, whose calculate_score
    (vision_evaluation/evaluators.py, 0.2.14, MemorizingEverythingEvaluator) first keeps only the columns of
    classes some target has, then takes np.argmax (the first maximum) and sklearn's balanced_accuracy_score.
    sklearn alone (CLIP_benchmark's rule) also averages over the classes in y_true only, but keeps a
    prediction of an absent class as a miss. `predicted` is the argmax over all classes: it only changes
    where it names an absent class, so just those rows are recomputed (cheap under bootstrap resampling)."""
    present = np.unique(labels)
    predicted = predicted.copy()
    outside = ~np.isin(predicted, present)
    if outside.any():
        predicted[outside] = present[np.argmax(logits[outside][:, present], axis=1)]
    return balanced_accuracy(labels, predicted)


def mean_per_class_recall(logits: torch.Tensor, labels: torch.Tensor) -> float:
    scores = logits.float().cpu().numpy()
    return balanced_accuracy_present(labels.cpu().numpy(), predictions(logits).cpu().numpy(), scores)


def elevater_probabilities(logits: torch.Tensor) -> np.ndarray:
    """ELEVATER scores softmax(100 * cosine); `logits` here already are 100 * cosine."""
    import torch

    return torch.softmax(logits.double(), dim=1).cpu().numpy()


def interpolated_precision(scores: np.ndarray, targets: np.ndarray, points: int = 11) -> np.ndarray:
    """VOC-2007 style: precision at recall 1.0, 0.9, ..., 0.0, each the highest precision reached at that
    recall or beyond (the running maximum along sklearn's precision-recall curve)."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(targets, scores)
    out = np.zeros(points)
    for i, level in enumerate(np.linspace(1, 0, points)):
        reached = precision[recall >= level]
        out[i] = reached.max() if reached.size else 0.0
    return out


def map_11point(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Multi-label 11-point interpolated mAP (ELEVATER, VOC 2007): per class with at least one positive,
    the mean of the 11 interpolated precisions; then the mean over those classes."""
    present = np.where(targets.sum(axis=0) > 0)[0]
    return float(np.mean([interpolated_precision(probabilities[:, c], targets[:, c]).mean() for c in present]))


def average_precision_per_class(logits: np.ndarray, targets: np.ndarray, tie_rule: str = "lower-index") -> np.ndarray:
    """CLIP_benchmark's average precision per class (zeroshot_classification.py average_precision_per_class,
    after torchnet's APMeter), on the logits (100 * cosine), not on probabilities: per class the images sorted
    by logit, best first; the AP is the mean, over the positives, of the precision (positives so far / position)
    at each positive's position, not interpolated; 0 for a class without positives. Equal logits: torch.sort's
    own order under tie_rule "topk-per-k" (CLIP_benchmark's torch.sort(scores_k, 0, True)), else the lower
    index first. Computed in double precision (CLIP_benchmark's is float32: they agree to about 1e-7)."""
    import torch

    scores = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    positive = np.asarray(targets) > 0
    position = np.arange(1, scores.shape[0] + 1)
    out = np.zeros(scores.shape[1])
    for c in range(scores.shape[1]):
        column = scores[:, c]  # a strided view, as CLIP_benchmark sorts it
        if tie_rule == "topk-per-k":
            order = torch.sort(column, 0, True)[1]
        else:
            order = torch.sort(column, dim=0, descending=True, stable=True)[1]
        truth = positive[order.numpy(), c]
        out[c] = (np.cumsum(truth)[truth] / position[truth]).sum() / max(int(truth.sum()), 1)
    return out


def mean_average_precision(logits: np.ndarray, targets: np.ndarray, tie_rule: str = "lower-index") -> float:
    """CLIP_benchmark's multi-label `mean_average_precision`: the mean of `average_precision_per_class` over
    every class, those without positives (AP 0) included."""
    return float(average_precision_per_class(logits, targets, tie_rule).mean())


def roc_auc(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Binary ROC-AUC of the positive class's probability (ELEVATER, Hateful Memes)."""
    from sklearn.metrics import roc_auc_score

    if probabilities.shape[1] != 2:
        raise ValueError("roc_auc needs exactly two classes")
    return float(roc_auc_score(labels, probabilities[:, 1]))


def _first_positive_rank(scores: torch.Tensor, positive: torch.Tensor, max_k: int) -> torch.Tensor:
    """Per row of a (queries, gallery) score matrix: the zero-based rank of the first correct item, the ties
    broken towards the lower index, capped at max_k; max_k where a row has no correct item.

    That first item is the correct one with the highest score, the lowest-indexed among equals: every item
    ranked above it is wrong, so its rank is the rank of the first correct item."""
    import torch

    position = torch.arange(scores.shape[1], device=scores.device)
    best = scores.masked_fill(~positive, float("-inf")).max(dim=1, keepdim=True).values
    first = torch.where(positive & (scores == best), position, scores.shape[1]).min(dim=1, keepdim=True).values
    rank = (scores > best).sum(dim=1) + ((scores == best) & (position < first)).sum(dim=1)
    rank[~positive.any(dim=1)] = max_k
    return rank.clamp(max=max_k)


def topk_found(scores: torch.Tensor, positive: torch.Tensor, ks=RECALL_KS) -> torch.Tensor:
    """CLIP_benchmark's recall@K per query (tie rule "topk-per-k"; zeroshot_retrieval.py recall_at_k, counted
    as found when its recall is above 0): a (queries, len(ks)) bool matrix, True where a correct item is among
    torch.topk(scores, k) of that row, one topk call per k (k capped at the gallery size, where CLIP_benchmark
    fails). Among equal scores torch chooses, and may choose differently for each k: the columns need not nest."""
    import torch

    width = scores.shape[1]
    return torch.stack([positive.gather(1, torch.topk(scores, min(k, width), dim=1)[1]).any(dim=1) for k in ks], dim=1)


def query_scores(queries: torch.Tensor, gallery: torch.Tensor, gallery_major: bool = False) -> torch.Tensor:
    """(queries, gallery) float32 scores of some query rows. `gallery_major`: computed as (gallery @ queries.T).T,
    which is how CLIP_benchmark's image->text scores are made (the transpose of texts @ images.T), so that
    equal scores are equal bit for bit as there. Its single matmul over all queries and ours over a chunk can
    still round differently in the last bit (BLAS blocking), which can only matter between scores within one
    float32 step of each other; exact ties (duplicated images or captions) stay exact."""
    return (gallery @ queries.T).T if gallery_major else queries @ gallery.T


def _one_to_many(image_emb, text_emb, text_to_image, chunk_size: int, upstream: bool):
    """(direction, scores, positive) per chunk of caption queries, then per chunk of image queries, each caption
    of one image. `upstream`: image->text scores as CLIP_benchmark computes them (see `query_scores`)."""
    import torch

    image_emb, text_emb = image_emb.float(), text_emb.float()
    text_to_image = text_to_image.to(image_emb.device).long()
    images = torch.arange(image_emb.shape[0], device=image_emb.device)
    for start in range(0, text_emb.shape[0], chunk_size):
        yield ("t2i", query_scores(text_emb[start:start + chunk_size], image_emb),
               images.view(1, -1) == text_to_image[start:start + chunk_size].view(-1, 1))
    for start in range(0, image_emb.shape[0], chunk_size):
        yield ("i2t", query_scores(image_emb[start:start + chunk_size], text_emb, gallery_major=upstream),
               text_to_image.view(1, -1) == images[start:start + chunk_size].view(-1, 1))


def _pair_mask(pairs: torch.Tensor, column: int, start: int, stop: int, width: int) -> torch.Tensor:
    """(stop - start, width) bool mask of the pairs whose `column` entry lies in [start, stop)."""
    import torch

    inside = pairs[(pairs[:, column] >= start) & (pairs[:, column] < stop)]
    mask = torch.zeros(stop - start, width, dtype=torch.bool, device=pairs.device)
    mask[inside[:, column] - start, inside[:, 1 - column]] = True
    return mask


def _many_to_many(image_emb, text_emb, positives, chunk_size: int, upstream: bool):
    """As `_one_to_many`, for (text, image) pairs (Chinese-CLIP's COCO-CN / Flickr30k-CN protocol): the image
    queries are the images some text names."""
    import torch

    image_emb, text_emb = image_emb.float(), text_emb.float()
    pairs = positives.to(image_emb.device).long().view(-1, 2)
    n_images, n_texts = image_emb.shape[0], text_emb.shape[0]
    for start in range(0, n_texts, chunk_size):
        stop = min(start + chunk_size, n_texts)
        yield "t2i", query_scores(text_emb[start:stop], image_emb), _pair_mask(pairs, 0, start, stop, n_images)

    queries = torch.unique(pairs[:, 1])
    images_of_pairs, texts_of_pairs = pairs[:, 1].contiguous(), pairs[:, 0].contiguous()
    for start in range(0, len(queries), chunk_size):
        chunk = queries[start:start + chunk_size]
        mask = torch.zeros(len(chunk), n_texts, dtype=torch.bool, device=pairs.device)
        rows = torch.searchsorted(chunk, images_of_pairs)
        keep = (rows < len(chunk)) & (chunk[rows.clamp(max=len(chunk) - 1)] == images_of_pairs)
        mask[rows[keep], texts_of_pairs[keep]] = True
        yield "i2t", query_scores(image_emb[chunk], text_emb, gallery_major=upstream), mask


def _per_direction(chunks, outcome, empty) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    found: dict[str, list] = {"t2i": [], "i2t": []}
    for direction, scores, positive in chunks:
        found[direction].append(outcome(scores, positive))
    return tuple(torch.cat(parts).cpu() if parts else empty for parts in found.values())


def retrieval_ranks(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    text_to_image: torch.Tensor,
    max_k: int = max(RECALL_KS),
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-based rank of the first correct item for every query, capped at max_k (= not found in the top max_k).

    Returns (t2i, i2t): one entry per caption and one per image.
    """
    import torch

    return _per_direction(_one_to_many(image_emb, text_emb, text_to_image, chunk_size, upstream=False),
                          lambda scores, positive: _first_positive_rank(scores, positive, max_k),
                          torch.zeros(0, dtype=torch.long))


def retrieval_ranks_multi(
    image_emb: torch.Tensor,
    text_emb: torch.Tensor,
    positives: torch.Tensor,
    max_k: int = max(RECALL_KS),
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like `retrieval_ranks`, for a many-to-many relation given as (text, image) pairs (Chinese-CLIP's
    COCO-CN / Flickr30k-CN protocol): a text is found when any of its images is in its top K; only images
    that some text names are image->text queries, found when any of their texts is in the top K."""
    import torch

    return _per_direction(_many_to_many(image_emb, text_emb, positives, chunk_size, upstream=False),
                          lambda scores, positive: _first_positive_rank(scores, positive, max_k),
                          torch.zeros(0, dtype=torch.long))


def retrieval_found(image_emb, text_emb, text_to_image=None, positives=None, ks=RECALL_KS,
                    chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Tie rule "topk-per-k" (CLIP_benchmark): (t2i, i2t) (queries, len(ks)) bool matrices, found within each K
    (`topk_found`), for one image per caption (`text_to_image`) or (text, image) pairs (`positives`, the query
    sets of `retrieval_ranks_multi`). Memory O(chunk x gallery), where CLIP_benchmark builds the whole matrix."""
    import torch

    chunks = (_one_to_many(image_emb, text_emb, text_to_image, chunk_size, upstream=True) if positives is None
              else _many_to_many(image_emb, text_emb, positives, chunk_size, upstream=True))
    return _per_direction(chunks, lambda scores, positive: topk_found(scores, positive, ks),
                          torch.zeros(0, len(ks), dtype=torch.bool))


def top_indices(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best columns of each row, best first, and their scores (k capped at the row length). The order
    follows the rank rule above: a stable descending sort keeps equal scores in increasing index, so the item
    at position r has rank r, as `rank_of` and `_first_positive_rank` count it."""
    import torch

    ordered, order = torch.sort(scores, dim=1, descending=True, stable=True)
    k = min(k, scores.shape[1])
    return order[:, :k], ordered[:, :k]


def retrieval_top(queries: torch.Tensor, gallery: torch.Tensor, k: int = max(RECALL_KS), chunk_size: int = 1024):
    """Per query row: the indices of its k best gallery items, best first, yielded one chunk at a time (memory
    O(chunk x gallery)). Scores are computed as `retrieval_ranks` computes them, chunk for chunk, so the
    order agrees with its ranks bit for bit."""
    queries, gallery = queries.float(), gallery.float()
    for start in range(0, queries.shape[0], chunk_size):
        yield top_indices(queries[start:start + chunk_size] @ gallery.T, k)[0].cpu()


def retrieval_topk_per_k(queries: torch.Tensor, gallery: torch.Tensor, ks=RECALL_KS, gallery_major: bool = False,
                         chunk_size: int = 1024):
    """Tie rule "topk-per-k": per chunk of query rows, {k: torch.topk indices, best first} for each k, the very
    calls `retrieval_found` counts (`gallery_major`: the image->text scores, see `query_scores`)."""
    import torch

    queries, gallery = queries.float(), gallery.float()
    for start in range(0, queries.shape[0], chunk_size):
        scores = query_scores(queries[start:start + chunk_size], gallery, gallery_major)
        yield {k: torch.topk(scores, min(k, scores.shape[1]), dim=1)[1].cpu() for k in ks}


def recall_at(ranks, k: int) -> float:
    """Fraction of queries whose first correct item has a zero-based rank below k."""
    return fraction(ranks < k)


def mean_recall(*directions, ks=RECALL_KS) -> float:
    """Mean of R@k over `ks` and over the rank arrays given (one direction, or t2i then i2t)."""
    return float(np.mean([recall_at(ranks, k) for ranks in directions for k in ks]))


def found_within(ranks: np.ndarray, ks=RECALL_KS) -> np.ndarray:
    """(queries, len(ks)) bool: the first correct item ranks below each k (the lower-index rule's recall@K;
    `topk_found` gives the same shape under "topk-per-k")."""
    return np.asarray(ranks)[:, None] < np.asarray(ks)


def mean_found(*directions) -> float:
    """Mean over the directions given and over their columns (one per K) of the fraction found: the mean
    recall of `found_within` / `topk_found` matrices, as `mean_recall` of ranks."""
    return float(np.mean([fraction(found[:, i]) for found in directions for i in range(found.shape[1])]))


def recalls_from_ranks(t2i_rank: torch.Tensor, i2t_rank: torch.Tensor, ks=RECALL_KS) -> dict[str, float]:
    out: dict[str, float] = {}
    for direction, ranks in (("t2i", t2i_rank), ("i2t", i2t_rank)):
        for k in ks:
            out[f"{direction}_recall@{k}"] = recall_at(ranks, k)
        out[f"{direction}_mean_recall"] = mean_recall(ranks, ks=ks)
    out["mean_recall"] = mean_recall(t2i_rank, i2t_rank, ks=ks)
    return out


def retrieval_metrics(image_emb, text_emb, text_to_image, chunk_size: int = 1024) -> dict[str, float]:
    return recalls_from_ranks(*retrieval_ranks(image_emb, text_emb, text_to_image, chunk_size=chunk_size))


def pair_scores(image_emb: torch.Tensor, text_emb: torch.Tensor) -> np.ndarray:
    """CFT-CLIP's score of each (image, text) pair: (cosine + 1) / 2, in float64."""
    cosine = (image_emb.float() * text_emb.float()).sum(dim=1)
    return ((cosine.double() + 1.0) / 2.0).cpu().numpy()


def median_threshold(validation_scores: np.ndarray) -> float:
    """CFT-CLIP's decision threshold: the median score on the validation split (its labels unused)."""
    return float(np.median(validation_scores))


def above(scores: np.ndarray, threshold: float) -> np.ndarray:
    """CFT-CLIP's prediction: 1 where the score is above the threshold, else 0."""
    return (scores > threshold).astype(np.int64)


def f1_positive(labels: np.ndarray, predicted: np.ndarray) -> float:
    """F1 of the positive class (CFT-CLIP); 0 when nothing is predicted positive."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predicted, pos_label=1, zero_division=0.0))


def spearman(scores: np.ndarray, labels: np.ndarray) -> float:
    """Spearman's rank correlation between score and label (CFT-CLIP)."""
    from scipy.stats import spearmanr

    return float(spearmanr(scores, labels).statistic)

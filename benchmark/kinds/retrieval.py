"""Text-image retrieval. Queries are the captions (text->image) and the images (image->text), each
resampled on its own with the gallery held fixed.

- t2i R@K: fraction of captions whose image is among the K most similar images.
- i2t R@K: fraction of images with at least one of their captions among the K most similar captions.
- mean recalls: the mean of R@1, R@5, R@10 of one direction, or of both directions.
Many-to-many captions (Chinese-CLIP's protocol) are described in metrics.retrieval_ranks_multi.
Ties follow the protocol's tie_rule (metrics module docstring): "lower-index" ranks, or "topk-per-k",
CLIP_benchmark's one torch.topk per K.
"""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..specs import TaskSpec
from .base import Column, Kind, Metric, Outcome, center_crop, no_check, setting

KS = metrics.RECALL_KS


def _found(direction: str):
    """Per query, found within each K: a (queries, len(KS)) bool matrix. The scores hold, per direction, either
    the zero-based rank of the first correct item capped at max(KS) (tie rule lower-index) or that matrix
    itself (topk-per-k, where the K's are counted by separate topk calls and need not nest)."""
    def compute(scores: dict) -> np.ndarray:
        outcome = scores[direction].numpy()
        return outcome if outcome.ndim == 2 else metrics.found_within(outcome, KS)
    return compute


T2I = Column("t2i_found", "texts", _found("t2i"))
I2T = Column("i2t_found", "images", _found("i2t"))


def _recall(k: int):
    column = KS.index(k)
    return lambda found: metrics.fraction(found[:, column])


METRICS = (
    *(Metric(f"t2i_recall@{k}", (T2I,), _recall(k)) for k in KS),
    *(Metric(f"i2t_recall@{k}", (I2T,), _recall(k)) for k in KS),
    Metric("t2i_mean_recall", (T2I,), metrics.mean_found),
    Metric("i2t_mean_recall", (I2T,), metrics.mean_found),
    Metric("mean_recall", (T2I, I2T), metrics.mean_found),
)


def score(spec: TaskSpec, data, encoder, cache, language: str, batch_size: int, num_workers: int,
          settings: dict) -> tuple[dict, Outcome]:
    import torch

    embedded_texts = cache.texts(encoder, data.texts, batch_size)
    embedded_images = cache.images(encoder, data.images, batch_size, num_workers, center_crop(spec, settings))
    images, texts = embedded_images.embeddings, embedded_texts.embeddings
    tie_rule = setting(settings, "tie_rule")
    positives = None if data.positives is None else torch.as_tensor(data.positives)  # many-to-many (Chinese-CLIP)
    owners = None if positives is not None else torch.as_tensor(data.text_to_image)
    if tie_rule == "topk-per-k":
        t2i, i2t = metrics.retrieval_found(images, texts, owners, positives, KS)
    elif positives is not None:
        t2i, i2t = metrics.retrieval_ranks_multi(images, texts, positives)
    else:
        t2i, i2t = metrics.retrieval_ranks(images, texts, owners)
    # the embeddings stay for the prediction lines; the image queries are the images some caption names
    queried = torch.unique(positives.view(-1, 2)[:, 1]) if positives is not None else None
    scores = {"t2i": t2i, "i2t": i2t, "images": images, "texts": texts, "image_queries": queried, "settings": settings}
    return scores, Outcome(len(data.images), len(data.texts), embedded_images.seconds,
                           embedded_images.reused).embedded_with(embedded_images, embedded_texts)


def _top_lines(queries, gallery, upstream: bool, gallery_major: bool):
    """Per query row: {"top10": ...} best first, and under topk-per-k also "top1" and "top5", the very topk
    calls that R@1 and R@5 counted (with ties they need not be the start of top10)."""
    if not upstream:
        return ({f"top{max(KS)}": row} for top in metrics.retrieval_top(queries, gallery, max(KS)) for row in top.tolist())
    return ({f"top{k}": top[k][row].tolist() for k in sorted(KS, key=lambda k: k != max(KS))}
            for top in metrics.retrieval_topk_per_k(queries, gallery, KS, gallery_major) for row in range(len(top[max(KS)])))


def predictions(scores: dict):
    """Text->image lines (query: caption index, top10: image indices), then image->text lines (query: image
    index, top10: caption indices), gallery items best first, equal scores in increasing index as the ranks
    count them. Image queries are all images, or with many-to-many captions the images some caption names.
    Under tie rule topk-per-k each line also has top1 and top5: torch's choice among equal scores is made per K."""
    images, texts, queried = scores["images"], scores["texts"], scores["image_queries"]
    upstream = setting(scores.get("settings"), "tie_rule") == "topk-per-k"
    for query, top in enumerate(_top_lines(texts, images, upstream, gallery_major=False)):
        yield {"query": query, "direction": "t2i", **top}
    numbers = range(images.shape[0]) if queried is None else queried.tolist()
    chosen = images if queried is None else images[queried.to(images.device)]
    for number, top in zip(numbers, _top_lines(chosen, texts, upstream, gallery_major=True)):
        yield {"query": number, "direction": "i2t", **top}


KIND = Kind("retrieval", METRICS, {"texts": lambda s: len(s["t2i"]), "images": lambda s: len(s["i2t"])}, no_check, score,
            predictions=predictions,
            facts=lambda spec, data, language, settings: {"n_texts": len(data.texts), "n_classes": None, "prompts": None})

"""Metric functions: hand-computed cases, and agreement with CLIP_benchmark and ELEVATER's own code."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark import metrics
from benchmark.kinds import KINDS, measure


def test_topk_accuracy_by_hand():
    logits = torch.tensor([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
    labels = torch.tensor([0, 1, 1, 2])
    # argmax: 0, 2, 0, 2 -> right on samples 0 and 3
    assert metrics.topk_accuracy(logits, labels, 1) == 0.5
    # top-2: {0,1}, {2,1}, {0,1}, {2,1} -> all right except none... sample 1: label 1 in {2,1}; sample 2: 1 in {0,1}
    assert metrics.topk_accuracy(logits, labels, 2) == 1.0
    # k larger than the number of classes is capped
    assert metrics.topk_accuracy(logits, labels, 5) == 1.0


def test_mean_per_class_recall_by_hand():
    # class 0: 3 samples, 3 right; class 1: 1 sample, 0 right -> (1 + 0) / 2
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])
    assert metrics.mean_per_class_recall(logits, labels) == 0.5
    assert metrics.topk_accuracy(logits, labels, 1) == 0.75


def test_retrieval_by_hand():
    # 3 images on the axes; captions 0,1 -> image 0, caption 2 -> image 1, caption 3 -> image 2
    images = torch.eye(3)
    texts = F.normalize(torch.tensor([
        [1.0, 0.1, 0.0],   # caption 0: image 0 first
        [0.0, 1.0, 0.2],   # caption 1: image 1 first, image 2 second, image 0 third
        [0.0, 1.0, 0.0],   # caption 2: image 1 first
        [1.0, 0.0, 0.5],   # caption 3: image 0 first, image 2 second
    ]), dim=-1)
    owners = torch.tensor([0, 0, 1, 2])
    t2i, i2t = metrics.retrieval_ranks(images, texts, owners)
    assert t2i.tolist() == [0, 2, 0, 1]
    # image 0: captions ranked 3 (0.89), 0 (0.995)... sorted: caption 0 (.995), caption 3 (.894) -> own caption first
    # image 1: caption 2 (1.0) first; image 2: caption 3 (.447), caption 1 (.196) -> own caption first
    assert i2t.tolist() == [0, 0, 0]
    scores = metrics.recalls_from_ranks(t2i, i2t, ks=(1, 2, 3))
    assert scores["t2i_recall@1"] == 0.5
    assert scores["t2i_recall@2"] == 0.75
    assert scores["t2i_recall@3"] == 1.0
    assert scores["i2t_recall@1"] == 1.0
    assert scores["t2i_mean_recall"] == pytest.approx((0.5 + 0.75 + 1.0) / 3)
    assert scores["mean_recall"] == pytest.approx((0.5 + 0.75 + 1.0 + 3.0) / 6)


def test_image_to_text_counts_an_image_once_even_with_several_hits():
    images = torch.eye(2)
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    t2i, i2t = metrics.retrieval_ranks(images, texts, torch.tensor([0, 0, 1]))
    scores = metrics.recalls_from_ranks(t2i, i2t, ks=(1,))
    assert scores["i2t_recall@1"] == 1.0  # two hits for image 0 count as one image found


def _random_retrieval(seed, n_images=97, per_image=5, dim=32):
    gen = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(n_images, dim, generator=gen), dim=-1)
    owners = torch.arange(n_images).repeat_interleave(per_image)
    texts = F.normalize(images[owners] + 1.2 * torch.randn(len(owners), dim, generator=gen), dim=-1)
    return images, texts, owners


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_equals_clip_benchmark(seed):
    from clip_benchmark.metrics.zeroshot_retrieval import batchify, recall_at_k

    images, texts, owners = _random_retrieval(seed)
    ours = metrics.retrieval_metrics(images, texts, owners, chunk_size=40)  # chunking must not matter
    scores = texts @ images.T
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(texts)), owners] = True
    for k in (1, 5, 10):
        t2i = (batchify(recall_at_k, scores, positive, 64, "cpu", k=k) > 0).float().mean().item()
        i2t = (batchify(recall_at_k, scores.T, positive.T, 64, "cpu", k=k) > 0).float().mean().item()
        assert ours[f"t2i_recall@{k}"] == pytest.approx(t2i, abs=1e-6)  # theirs is a float32 mean
        assert ours[f"i2t_recall@{k}"] == pytest.approx(i2t, abs=1e-6)
    # and the values are not trivial: neither 0 nor 1 at R@1
    assert 0.0 < ours["t2i_recall@1"] < 1.0


def test_retrieval_chunk_size_does_not_change_results():
    images, texts, owners = _random_retrieval(7)
    reference = metrics.retrieval_metrics(images, texts, owners, chunk_size=100_000)
    for chunk in (1, 3, 64):
        assert metrics.retrieval_metrics(images, texts, owners, chunk_size=chunk) == reference


def classification_values(logits, labels, names):
    """The classification kind's metric records, as a run computes them."""
    return measure(KINDS["classification"], {"logits": logits, "labels": labels}, names).values()


def _random_classification(seed, n=300, classes=12, dim=24):
    gen = torch.Generator().manual_seed(seed)
    classifier = F.normalize(torch.randn(classes, dim, generator=gen), dim=-1)
    labels = torch.randint(0, classes, (n,), generator=gen)
    images = F.normalize(classifier[labels] + 1.5 * torch.randn(n, dim, generator=gen), dim=-1)
    return metrics.classifier_logits(images, classifier), labels


@pytest.mark.parametrize("seed", [0, 1])
def test_classification_equals_clip_benchmark_and_elevater(seed):
    from sklearn.metrics import balanced_accuracy_score
    from vision_evaluation.evaluators import TopKAccuracyEvaluator

    logits, labels = _random_classification(seed)
    ours = classification_values(logits, labels, ["acc1", "acc5", "mean_per_class_recall"])

    # CLIP_benchmark's mean_per_class_recall is sklearn's balanced accuracy of the argmax (its evaluate()).
    pred = logits.argmax(dim=1)
    assert ours["mean_per_class_recall"] == pytest.approx(balanced_accuracy_score(labels.numpy(), pred.numpy()), abs=1e-12)

    # CLIP_benchmark's top-k `accuracy` helper fails under numpy >= 2.4 (it converts a 1-element array
    # with float()); when it runs we compare with it, otherwise with ELEVATER's TopKAccuracyEvaluator.
    from clip_benchmark.metrics.zeroshot_classification import accuracy

    try:
        acc1, acc5 = accuracy(logits, labels, topk=(1, 5))
    except TypeError:
        acc1 = acc5 = None
    probs = torch.softmax(logits, dim=1).numpy()
    for k, theirs in ((1, acc1), (5, acc5)):
        evaluator = TopKAccuracyEvaluator(k)
        evaluator.add_predictions(probs, labels.numpy())
        elevater = evaluator.get_report()[f"accuracy_top{k}"]
        assert ours[f"acc{k}"] == pytest.approx(elevater, abs=1e-9)
        if theirs is not None:
            assert ours[f"acc{k}"] == pytest.approx(theirs, abs=1e-9)
    assert 0.0 < ours["acc1"] < ours["acc5"] < 1.0


def test_clip_benchmark_topk_helper_status_is_known():
    """Documents why the comparison above may use ELEVATER's evaluator: under numpy 2.4 CLIP_benchmark's
    `accuracy` raises. If a future numpy/CLIP_benchmark fixes it, this test tells us to compare directly."""
    from clip_benchmark.metrics.zeroshot_classification import accuracy

    logits, labels = _random_classification(3)
    major, minor = (int(x) for x in np.__version__.split(".")[:2])
    if (major, minor) >= (2, 4):
        with pytest.raises(TypeError):
            accuracy(logits, labels, topk=(1,))
    else:
        assert accuracy(logits, labels, topk=(1,))[0] == metrics.topk_accuracy(logits, labels, 1)


def test_interpolated_precision_by_hand():
    # ranking: pos, neg, pos, neg -> (recall, precision) points (0.5, 1.0), (1.0, 2/3)
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    targets = np.array([1, 0, 1, 0])
    interp = metrics.interpolated_precision(scores, targets)
    # recall levels 1.0 .. 0.6 -> best precision at recall >= level is 2/3; 0.5 .. 0.0 -> 1.0
    expected = np.array([2 / 3] * 5 + [1.0] * 6)
    assert np.allclose(interp, expected)
    assert metrics.map_11point(np.stack([scores, 1 - scores], 1), np.stack([targets, 1 - targets], 1)) == pytest.approx(
        (expected.mean() + metrics.interpolated_precision(1 - scores, 1 - targets).mean()) / 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_11point_equals_elevater(seed):
    from vision_evaluation.evaluators import MeanAveragePrecisionNPointsEvaluator

    rng = np.random.default_rng(seed)
    targets = (rng.random((120, 20)) < 0.15).astype(np.int64)
    targets[:, 7] = 0  # a class without positives is left out, as ELEVATER does
    logits = torch.tensor(100 * (0.2 * targets + 0.3 * rng.random((120, 20))))
    probabilities = metrics.elevater_probabilities(logits)
    evaluator = MeanAveragePrecisionNPointsEvaluator(11)
    evaluator.add_predictions(probabilities, targets)
    theirs = evaluator.get_report()["mAP_11_points"]
    ours = classification_values(logits, torch.tensor(targets), ["map_11point"])["map_11point"]
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert 0.2 < ours < 1.0


def test_roc_auc_and_balanced_accuracy_equal_elevater():
    from vision_evaluation.evaluators import BalancedAccuracyScoreEvaluator, RocAucEvaluator

    logits, labels = _random_classification(4, classes=2)
    probabilities = metrics.elevater_probabilities(logits)
    ours = classification_values(logits, labels, ["roc_auc", "mean_per_class_recall"])
    auc = RocAucEvaluator()
    auc.add_predictions(probabilities, labels.numpy())
    assert ours["roc_auc"] == pytest.approx(auc.get_report()["roc_auc"], abs=1e-12)
    balanced = BalancedAccuracyScoreEvaluator()
    balanced.add_predictions(probabilities, labels.numpy())
    assert ours["mean_per_class_recall"] == pytest.approx(balanced.get_report()["balanced_accuracy"], abs=1e-12)


def test_multi_positive_retrieval_by_hand():
    images = torch.eye(3)
    texts = F.normalize(torch.tensor([[1.0, 0.9, 0.0], [0.0, 0.2, 1.0], [0.0, 1.0, 0.1]]), dim=-1)
    # text 0 names images 0 and 1; text 1 names image 1; text 2 names image 1; image 2 is named by no text
    pairs = torch.tensor([[0, 0], [0, 1], [1, 1], [2, 1]])
    t2i, i2t = metrics.retrieval_ranks_multi(images, texts, pairs)
    # text 0: top image 0 (named) -> 0; text 1: images 2, 1 -> 1; text 2: image 1 -> 0
    assert t2i.tolist() == [0, 1, 0]
    # queries are images 0 and 1 only. image 0: texts 0 (.74), ... -> 0; image 1: text 2 (.995) -> 0
    assert i2t.tolist() == [0, 0]


def test_multi_positive_equals_single_positive_when_one_image_per_text():
    images, texts, owners = _random_retrieval(3)
    pairs = torch.stack([torch.arange(len(owners)), owners], dim=1)
    single = metrics.retrieval_ranks(images, texts, owners, chunk_size=50)
    multi = metrics.retrieval_ranks_multi(images, texts, pairs, chunk_size=37)
    assert torch.equal(single[0], multi[0]) and torch.equal(single[1], multi[1])


# ---------------------------------------------------------------- mean per-class recall with classes that have no test image

def _classes_without_images(seed):
    """Labels that never use classes 3 and 7, logits that often pick them."""
    logits, labels = _random_classification(seed, n=200, classes=10)
    labels = torch.where((labels == 3) | (labels == 7), (labels + 1) % 10, labels)
    logits[:, 3] += 0.6 * logits.std()  # class 3 (no test image) wins many argmaxes
    return logits, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_per_class_recall_drops_classes_without_images_as_elevater_does(seed):
    """ELEVATER's mean-per-class is vision-evaluation's BalancedAccuracyScoreEvaluator on softmax(100 *
    cosine) (Computer-Vision-in-the-Wild/Elevater_Toolkit_IC @ 00d0af7, vision_benchmark/evaluation/metric.py
    and clip_zeroshot_evaluator.py): it removes the classes with no target before its argmax."""
    from sklearn.metrics import balanced_accuracy_score
    from vision_evaluation.evaluators import BalancedAccuracyScoreEvaluator

    logits, labels = _classes_without_images(seed)
    probabilities = torch.softmax(logits, dim=1).numpy()
    evaluator = BalancedAccuracyScoreEvaluator()
    evaluator.add_predictions(probabilities, labels.numpy())
    elevater = evaluator.get_report()["balanced_accuracy"]
    ours = classification_values(logits, labels, ["mean_per_class_recall"])["mean_per_class_recall"]
    assert ours == pytest.approx(elevater, abs=1e-12)
    assert metrics.mean_per_class_recall(logits, labels) == pytest.approx(elevater, abs=1e-12)
    # the case is real: the argmax picks an absent class, and plain sklearn (which also averages over the
    # classes of y_true only, but counts those predictions as misses) gives a lower number
    assert int((logits.argmax(dim=1) == 3).sum()) > 10
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        plain = balanced_accuracy_score(labels.numpy(), logits.argmax(dim=1).numpy())
    assert plain < elevater - 0.01


def test_mean_per_class_recall_by_hand_with_an_absent_class():
    # class 1 has no test image; image 0 (label 0) prefers class 1, then class 0; image 1 (label 2) prefers 1, then 0
    logits = torch.tensor([[0.5, 0.9, 0.1], [0.5, 0.9, 0.2]])
    labels = torch.tensor([0, 2])
    # among classes {0, 2}: image 0 -> 0 (right), image 1 -> 0 (wrong): recalls 1 and 0
    assert metrics.mean_per_class_recall(logits, labels) == 0.5


def test_mean_per_class_recall_bootstrap_drops_the_classes_a_resample_lacks():
    """Twelve images: most resamples lack some class that the full set has; each is scored as ELEVATER would."""
    from vision_evaluation.evaluators import BalancedAccuracyScoreEvaluator

    logits, labels = _classes_without_images(0)
    logits, labels = logits[:12], labels[:12]
    queries = measure(KINDS["classification"], {"logits": logits, "labels": labels}, ["mean_per_class_recall"])
    rng = np.random.default_rng(0)
    lacking = 0
    for _ in range(20):
        drawn = queries.resample(rng)
        rows, scores = drawn.columns["labels"][1], drawn.columns["logits"][1]
        lacking += len(np.unique(rows)) < len(np.unique(labels.numpy()))
        evaluator = BalancedAccuracyScoreEvaluator()
        evaluator.add_predictions(torch.softmax(torch.from_numpy(scores), dim=1).numpy(), rows)
        assert drawn.values()["mean_per_class_recall"] == pytest.approx(evaluator.get_report()["balanced_accuracy"], abs=1e-12)
    assert lacking > 5


# ---------------------------------------------------------------- ties: the lower index wins

def _lower_index_order(row) -> list[int]:
    """Indices of `row`, best first, equal scores in index order: the rule written as a plain sort."""
    return sorted(range(len(row)), key=lambda i: (-row[i], i))


def _integer_embeddings(seed, n, dim=6):
    """Small-integer vectors: every dot product is exact in float32, so equal scores are exactly equal
    and there are many of them."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(-1, 2, (n, dim), generator=gen).float()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_ties_go_to_the_lower_class_index(seed):
    logits = _integer_embeddings(seed, 400) @ _integer_embeddings(seed + 10, 40).T
    labels = torch.randint(0, 40, (400,), generator=torch.Generator().manual_seed(seed))
    rank = [_lower_index_order(row).index(label) for row, label in zip(logits.tolist(), labels.tolist())]
    assert sum(r != (row > row[label]).sum() for r, row, label in zip(rank, logits, labels)) > 50  # ties matter
    for k in (1, 5):
        assert metrics.topk_hits(logits, labels, k).tolist() == [r < k for r in rank]
    assert metrics.predictions(logits).tolist() == [_lower_index_order(row)[0] for row in logits.tolist()]
    # ELEVATER's acc1 (Computer-Vision-in-the-Wild/Elevater_Toolkit_IC @ 00d0af7, vision_benchmark/evaluation/
    # metric.py: accuracy) is vision-evaluation's TopKAccuracyEvaluator(1), whose TopKPredictionFilter takes
    # np.argmax for k = 1: the first maximum. (Its k > 1 uses np.argpartition: no defined order among ties.)
    from vision_evaluation.evaluators import TopKAccuracyEvaluator

    assert metrics.predictions(logits).tolist() == np.argmax(logits.numpy(), axis=1).tolist()
    evaluator = TopKAccuracyEvaluator(1)
    evaluator.add_predictions(logits.numpy(), labels.numpy())
    assert metrics.topk_accuracy(logits, labels, 1) == evaluator.get_report()["accuracy_top1"]


def _reference_ranks(scores: torch.Tensor, positive: torch.Tensor, max_k: int) -> list[int]:
    """Position of the first correct item in each row's lower-index-first order, capped at max_k."""
    out = []
    for row, wanted in zip(scores.tolist(), positive.tolist()):
        found = [p for p, i in enumerate(_lower_index_order(row)) if wanted[i]]
        out.append(min(found[0], max_k) if found else max_k)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_ties_go_to_the_lower_gallery_index(seed):
    """Duplicated images and captions plus integer embeddings: exact ties everywhere."""
    images = _integer_embeddings(seed, 60)
    images[30:] = images[:30]  # every image twice
    owners = torch.arange(60).repeat_interleave(3)
    texts = images[owners] + _integer_embeddings(seed + 5, 180)
    texts[1::3] = texts[0::3]  # duplicated captions of one image
    scores = texts @ images.T
    positive = owners.view(-1, 1) == torch.arange(60).view(1, -1)
    t2i, i2t = metrics.retrieval_ranks(images, texts, owners, chunk_size=17)
    assert t2i.tolist() == _reference_ranks(scores, positive, 10)
    assert i2t.tolist() == _reference_ranks(scores.T, positive.T, 10)
    assert 0 < int((t2i == 0).sum()) < len(t2i)
    # the many-to-many path follows the same rule
    pairs = torch.stack([torch.arange(len(owners)), owners], dim=1)
    multi = metrics.retrieval_ranks_multi(images, texts, pairs, chunk_size=23)
    assert torch.equal(multi[0], t2i) and torch.equal(multi[1], i2t)


def test_retrieval_tie_by_hand():
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # images 0 and 1 are the same picture
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    t2i, i2t = metrics.retrieval_ranks(images, texts, torch.tensor([0, 1, 2]))
    # text 1's image ties with image 0, which comes first: rank 1; text 0's wins the tie: rank 0
    assert t2i.tolist() == [0, 1, 0]
    assert i2t.tolist() == [0, 1, 0]

"""Pair scoring, CFT-CLIP's protocol (news thumbnails): each (image, text) pair gets the score
(cosine + 1) / 2; the threshold is the median score on the validation split (its labels unused); a test
pair is predicted positive when its score is above the threshold.

Queries are the test pairs; a bootstrap resamples them and keeps the validation threshold.
- f1: F1 of the positive class.
- spearman: Spearman's rank correlation between score and label.
"""

from __future__ import annotations

from .. import metrics
from ..specs import DatasetSpec, TaskSpec
from .base import Column, Kind, KindOption, Metric, Outcome, center_crop, no_check

# scores: {"test": (pairs,) float64 scores, "labels": (pairs,) 0/1, "threshold": the validation median}
SCORES = Column("score", "test pairs", lambda s: s["test"])
LABELS = Column("label", "test pairs", lambda s: s["labels"])
PREDICTED = Column("predicted", "test pairs", lambda s: metrics.above(s["test"], s["threshold"]))

METRICS = (
    Metric("f1", (LABELS, PREDICTED), metrics.f1_positive),
    Metric("spearman", (SCORES, LABELS), metrics.spearman),
)


def score(spec: TaskSpec, data, encoder, cache, language: str, batch_size: int, num_workers: int,
          settings: dict) -> tuple[dict, Outcome]:
    images = cache.images(encoder, data.images, batch_size, num_workers, center_crop(spec, settings))
    texts = cache.texts(encoder, data.texts, batch_size)
    scores = metrics.pair_scores(images.embeddings, texts.embeddings)
    validation, test = scores[: data.n_validation], scores[data.n_validation:]
    threshold = metrics.median_threshold(validation)
    extra = {"text_field": data.text_field, "threshold": threshold, "n_validation": data.n_validation, "n_test": len(test)}
    return ({"test": test, "labels": data.labels, "threshold": threshold},
            Outcome(len(data.images), len(data.texts), images.seconds, images.reused, extra=extra).embedded_with(images, texts))


def predictions(scores: dict):
    """Per test pair (indices count the test pairs only, in file order): its score, its label and the
    prediction the F1 counts (above the validation median)."""
    predicted = metrics.above(scores["test"], scores["threshold"])
    for index, (value, label, guess) in enumerate(zip(scores["test"].tolist(), scores["labels"].tolist(), predicted.tolist())):
        yield {"index": index, "score": value, "label": int(label), "predicted": int(guess)}


def with_text_field(task: TaskSpec, text_field: str) -> TaskSpec:
    """`--text-field`: the text compared with each image (the pairs format's `text_field` column)."""
    return task.model_copy(update={"dataset": DatasetSpec(**{**task.dataset.model_dump(), "text_field": text_field})})


TEXT_FIELD = KindOption("--text-field", ("title", "summary"), with_text_field, "pair-scoring tasks (news-thumbnails)")

KIND = Kind("pair", METRICS, {"test pairs": lambda s: len(s["test"])}, no_check, score,
            options={"text_field": TEXT_FIELD}, variant=lambda data: data.text_field,
            predictions=predictions,
            facts=lambda spec, data, language, settings: {"n_texts": len(data.texts), "n_classes": None, "prompts": None})

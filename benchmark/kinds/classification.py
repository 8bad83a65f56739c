"""Zero-shot classification: images against a classifier built from class names x templates.

Queries are the images. Definitions (DESIGN.md section 4, CLIP_benchmark, ELEVATER):
- acc1, acc5: the label is among the k highest logits (k capped at the class count).
- mean_per_class_recall: balanced accuracy of the argmax (sklearn), over the classes with test images, the
  argmax taken among those classes (ELEVATER's rule; metrics.balanced_accuracy_present).
- map_11point: ELEVATER's multi-label 11-point mAP on softmax(100 * cosine); single-label data counts as one-hot.
- mean_average_precision: CLIP_benchmark's multi-label mean AP, not interpolated, on the logits
  (metrics.mean_average_precision); single-label data counts as one-hot.
- roc_auc: ELEVATER's binary ROC-AUC of the positive class's probability.
Multi-label data ((N, C) 0/1 labels) supports the two mAPs only.
Protocol settings (specs.ProtocolSpec) change these to CLIP_benchmark 1.6.2's (LAION-AI/CLIP_benchmark @
b4b6a33c8dc01fe44acf24f24f71ac7585d52571, clip_benchmark/metrics/zeroshot_classification.py, evaluate()):
tie_rule "topk-per-k" (acc@k from one topk, its accuracy()), topk_beyond_classes "nan" (acc5 NaN below 5
classes: `if len(dataloader.dataset.classes) >= 5`, here the classifier's classes), recall_argmax "all-classes"
(sklearn's balanced_accuracy_score of the argmax over every class) and multilabel_map "non-interpolated"
(map_11point replaced by mean_average_precision, its is_multilabel result).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import metrics, prompts as prompt_files
from ..errors import ClipbenchError
from ..prompts import Prompts
from ..specs import TaskSpec
from .base import Column, Kind, Metric, Outcome, center_crop, setting


@dataclass(frozen=True)
class ClassificationMetric(Metric):
    multi_label: bool = False  # also defined on (N, C) 0/1 label matrices


ACC_KS = (1, 5)


def widest_topk(classes: int, beyond: str) -> int:
    """The k of the one topk that acc@k counts under tie rule topk-per-k (CLIP_benchmark: max(topk) of the
    accuracies it computes, which below 5 classes under "nan" is acc1 alone), capped at the class count."""
    return min(max(k for k in ACC_KS if k <= classes or beyond == "capped"), classes)


def _top_hits(k: int):
    def compute(scores: dict) -> np.ndarray:
        logits, labels, settings = scores["logits"], scores["labels"], scores.get("settings")
        beyond = setting(settings, "topk_beyond_classes")
        if k > logits.shape[1] and beyond == "nan":
            return np.full(logits.shape[0], np.nan)  # undefined, as CLIP_benchmark's acc5 below 5 classes
        if setting(settings, "tie_rule") == "topk-per-k":
            top, _ = metrics.top_classes(logits, widest_topk(logits.shape[1], beyond))
            return metrics.topk_found_in(top, labels, k).cpu().numpy()
        return metrics.topk_hits(logits, labels, k).cpu().numpy()
    return compute


# scores: {"logits": (N, C) 100 * cosine, float32 tensor; "labels": (N,) class indices or (N, C) 0/1 tensor;
#          "settings": the protocol's (absent: the defaults)}
LABELS = Column("labels", "images", lambda s: s["labels"].cpu().numpy())
TOP1 = Column("top1", "images", _top_hits(1))
TOP5 = Column("top5", "images", _top_hits(5))
PREDICTED = Column("predicted", "images", lambda s: metrics.predictions(s["logits"]).cpu().numpy())
LOGITS = Column("logits", "images", lambda s: s["logits"].float().cpu().numpy())
PROBABILITIES = Column("probabilities", "images", lambda s: metrics.elevater_probabilities(s["logits"]))


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return labels if labels.ndim == 2 else np.eye(classes, dtype=np.int64)[labels]


def _map_11point(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return metrics.map_11point(probabilities, _one_hot(labels, probabilities.shape[1]))


def _mean_average_precision(logits: np.ndarray, labels: np.ndarray, tie_rule: str) -> float:
    return metrics.mean_average_precision(logits, _one_hot(labels, logits.shape[1]), tie_rule)


def _mean_per_class_recall(labels: np.ndarray, predicted: np.ndarray, logits: np.ndarray, recall_argmax: str) -> float:
    if recall_argmax == "all-classes":  # CLIP_benchmark: a prediction of a class without test images is a miss
        return metrics.balanced_accuracy(labels, predicted)
    return metrics.balanced_accuracy_present(labels, predicted, logits)


METRICS = (
    ClassificationMetric("acc1", (TOP1,), metrics.fraction),
    ClassificationMetric("acc5", (TOP5,), metrics.fraction),
    ClassificationMetric("mean_per_class_recall", (LABELS, PREDICTED, LOGITS), _mean_per_class_recall,
                         options=("recall_argmax",)),
    ClassificationMetric("map_11point", (PROBABILITIES, LABELS), _map_11point, multi_label=True),
    ClassificationMetric("mean_average_precision", (LOGITS, LABELS), _mean_average_precision, multi_label=True,
                         options=("tie_rule",)),
    ClassificationMetric("roc_auc", (PROBABILITIES, LABELS), metrics.roc_auc),
)


def renames(settings: dict) -> dict[str, str]:
    """multilabel_map = "non-interpolated": CLIP_benchmark's mean AP, a different number, under its own name."""
    return {"map_11point": "mean_average_precision"} if setting(settings, "multilabel_map") == "non-interpolated" else {}


def predictions(scores: dict, k: int = 5, chunk_size: int = 1024):
    """Per image: its index, its label (the positive classes' indices for multi-label data), the k best
    classes (best first, equal logits in increasing class index, as acc@k counts them) and their logits.
    Under tie rule topk-per-k, the one torch.topk that acc1 and acc5 count (`widest_topk` classes, torch's
    order among equal logits), so top5[0] is what acc1 counts but can differ from the argmax (the lowest
    index among equal maxima) that mean_per_class_recall counts, as in CLIP_benchmark."""
    logits, labels, settings = scores["logits"], scores["labels"].cpu().numpy(), scores.get("settings")
    upstream = setting(settings, "tie_rule") == "topk-per-k"
    widest = widest_topk(logits.shape[1], setting(settings, "topk_beyond_classes"))
    for start in range(0, logits.shape[0], chunk_size):
        chunk = logits[start:start + chunk_size].float()
        top, values = metrics.top_classes(chunk, widest) if upstream else metrics.top_indices(chunk, k)
        for offset, (classes, logit) in enumerate(zip(top.cpu().tolist(), values.cpu().tolist())):
            label = labels[start + offset]
            yield {"index": start + offset, "label": np.flatnonzero(label).tolist() if label.ndim else int(label),
                   "top5": classes, "top5_scores": logit}


def task_prompts(spec: TaskSpec, data, language: str, settings: dict) -> Prompts:
    if settings.get("prompts"):  # the protocol's prompt file for this task and language
        found = prompt_files.load(settings["prompts"], language, spec.num_classes)
    elif spec.prompts:
        found = prompt_files.load(spec.prompts, language, spec.num_classes)
    elif data.prompts is not None:
        found = data.prompts
    else:
        raise ClipbenchError(f"task '{spec.name}' names no prompts and its data brings none; add 'prompts = ...' to {spec.source_file}")
    short_as_published = found.short_list and len(found.classnames) < data.num_classes  # see PromptFile.short_list
    if len(found.classnames) != data.num_classes and not short_as_published:
        raise ClipbenchError(
            f"{found.origin}: {len(found.classnames)} class names but the '{spec.name}' data has {data.num_classes} classes; "
            "fix the class-name list so there is one name per class"
        )
    return found


def check(spec: TaskSpec, data, language: str, settings: dict) -> None:
    task_prompts(spec, data, language, settings)
    if np.ndim(data.labels) == 2:
        unsupported = [m.name for m in METRICS if m.name in spec.metrics and not m.multi_label]
        if unsupported:
            supported = [m.name for m in METRICS if m.multi_label]
            raise ClipbenchError(
                f"task '{spec.name}': its data is multi-label, which supports {', '.join(supported)} only, not "
                f"{', '.join(unsupported)}; set metrics = {supported} in {spec.source_file or spec.name}")


def score(spec: TaskSpec, data, encoder, cache, language: str, batch_size: int, num_workers: int,
          settings: dict) -> tuple[dict, Outcome]:
    import torch

    prompts = task_prompts(spec, data, language, settings)
    classifier = cache.classifier(encoder, prompts, batch_size, settings.get("template_averaging", "normalise-then-mean"))
    images = cache.images(encoder, data.images, batch_size, num_workers, center_crop(spec, settings))
    scores = {"logits": metrics.classifier_logits(images.embeddings, classifier.embeddings),
              "labels": torch.as_tensor(data.labels),
              "settings": settings}
    return scores, Outcome(len(data.images), len(prompts.classnames) * len(prompts.templates), images.seconds,
                           images.reused, data.num_classes, prompts).embedded_with(images, classifier)


def facts(spec: TaskSpec, data, language: str, settings: dict) -> dict:
    prompts = task_prompts(spec, data, language, settings)
    return {"n_texts": len(prompts.classnames) * len(prompts.templates), "n_classes": data.num_classes, "prompts": prompts}


KIND = Kind("classification", METRICS, {"images": lambda s: s["logits"].shape[0]}, check, score,
            predictions=predictions, renames=renames, facts=facts)

"""Zero-shot classification: images against a classifier built from class names x templates.

Queries are the images. Definitions (DESIGN.md section 4, CLIP_benchmark, ELEVATER):
- acc1, acc5: the label is among the k highest logits (k capped at the class count).
- mean_per_class_recall: balanced accuracy of the argmax (sklearn), over the classes with test images, the
  argmax taken among those classes (ELEVATER's rule; metrics.balanced_accuracy_present).
- map_11point: ELEVATER's multi-label 11-point mAP on softmax(100 * cosine); single-label data counts as one-hot.
- roc_auc: ELEVATER's binary ROC-AUC of the positive class's probability.
Multi-label data ((N, C) 0/1 labels) supports map_11point only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import metrics, prompts as prompt_files
from ..errors import ClipbenchError
from ..prompts import Prompts
from ..specs import TaskSpec
from .base import Column, Kind, Metric, Outcome, center_crop


@dataclass(frozen=True)
class ClassificationMetric(Metric):
    multi_label: bool = False  # also defined on (N, C) 0/1 label matrices


# scores: {"logits": (N, C) 100 * cosine, float32 tensor; "labels": (N,) class indices or (N, C) 0/1 tensor}
LABELS = Column("labels", "images", lambda s: s["labels"].cpu().numpy())
TOP1 = Column("top1", "images", lambda s: metrics.topk_hits(s["logits"], s["labels"], 1).cpu().numpy())
TOP5 = Column("top5", "images", lambda s: metrics.topk_hits(s["logits"], s["labels"], 5).cpu().numpy())
PREDICTED = Column("predicted", "images", lambda s: metrics.predictions(s["logits"]).cpu().numpy())
LOGITS = Column("logits", "images", lambda s: s["logits"].float().cpu().numpy())
PROBABILITIES = Column("probabilities", "images", lambda s: metrics.elevater_probabilities(s["logits"]))


def _map_11point(probabilities: np.ndarray, labels: np.ndarray) -> float:
    targets = labels if labels.ndim == 2 else np.eye(probabilities.shape[1], dtype=np.int64)[labels]
    return metrics.map_11point(probabilities, targets)


METRICS = (
    ClassificationMetric("acc1", (TOP1,), metrics.fraction),
    ClassificationMetric("acc5", (TOP5,), metrics.fraction),
    ClassificationMetric("mean_per_class_recall", (LABELS, PREDICTED, LOGITS), metrics.balanced_accuracy_present),
    ClassificationMetric("map_11point", (PROBABILITIES, LABELS), _map_11point, multi_label=True),
    ClassificationMetric("roc_auc", (PROBABILITIES, LABELS), metrics.roc_auc),
)


def predictions(scores: dict, k: int = 5, chunk_size: int = 1024):
    """Per image: its index, its label (the positive classes' indices for multi-label data), the k best
    classes (best first, equal logits in increasing class index, as acc@k counts them) and their logits."""
    logits, labels = scores["logits"], scores["labels"].cpu().numpy()
    for start in range(0, logits.shape[0], chunk_size):
        top, values = metrics.top_indices(logits[start:start + chunk_size].float(), k)
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
              "labels": torch.as_tensor(data.labels)}
    return scores, Outcome(len(data.images), len(prompts.classnames) * len(prompts.templates), images.seconds,
                           images.reused, data.num_classes, prompts).embedded_with(images, classifier)


KIND = Kind("classification", METRICS, {"images": lambda s: s["logits"].shape[0]}, check, score,
            predictions=predictions)

"""Evaluators per task kind: (task, data, encoder) -> metrics. Everything after the embeddings is pure."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import metrics, prompts as prompt_files
from .bootstrap import Resampler, classification_resampler, retrieval_resampler
from .data import ClassificationData, RetrievalData
from .embed import ImageEmbeddingCache, build_classifier, embed_texts
from .errors import ClipbenchError
from .models.base import Encoder
from .prompts import Prompts
from .specs import TaskSpec


@dataclass
class Outcome:
    metrics: dict[str, float]
    n_images: int
    n_texts: int
    n_classes: int | None = None
    prompts: Prompts | None = None
    image_seconds: float = 0.0
    images_cached: bool = False
    resample: Resampler | None = None  # for --bootstrap: recompute the metrics on resampled queries
    extra: dict | None = None  # kind-specific facts worth recording (pair scoring: text field, threshold)


def task_prompts(spec: TaskSpec, data: ClassificationData, language: str) -> Prompts:
    if spec.prompts:
        found = prompt_files.load(spec.prompts, language, spec.num_classes)
    elif data.prompts is not None:
        found = data.prompts
    else:
        raise ClipbenchError(f"task '{spec.name}' names no prompts and its data brings none; add 'prompts = ...' to {spec.source_file}")
    if len(found.classnames) != data.num_classes:
        raise ClipbenchError(
            f"{found.origin}: {len(found.classnames)} class names but the '{spec.name}' data has {data.num_classes} classes; "
            "fix the class-name list so there is one name per class"
        )
    return found


def classification(spec, data: ClassificationData, encoder: Encoder, cache: ImageEmbeddingCache,
                   language: str, batch_size: int, num_workers: int) -> Outcome:
    prompts = task_prompts(spec, data, language)
    classifier = build_classifier(encoder, prompts, batch_size)
    center_crop = bool(spec.dataset.options.get("center_crop", True))
    images, seconds, cached = cache.get(encoder, data.images, batch_size, num_workers, center_crop)
    logits = metrics.classifier_logits(images, classifier)
    labels = torch.as_tensor(data.labels)
    scores = metrics.classification_metrics(logits, labels, spec.metrics)
    return Outcome(scores, len(data.images), len(prompts.classnames) * len(prompts.templates),
                   data.num_classes, prompts, seconds, cached, classification_resampler(logits, labels, spec.metrics))


def retrieval(spec, data: RetrievalData, encoder: Encoder, cache: ImageEmbeddingCache,
              language: str, batch_size: int, num_workers: int) -> Outcome:
    texts = embed_texts(encoder, data.texts, batch_size)
    images, seconds, cached = cache.get(encoder, data.images, batch_size, num_workers)
    if data.positives is not None:  # many-to-many captions (Chinese-CLIP's protocol)
        ranks = metrics.retrieval_ranks_multi(images, texts, torch.as_tensor(data.positives))
    else:
        ranks = metrics.retrieval_ranks(images, texts, torch.as_tensor(data.text_to_image))
    all_scores = metrics.recalls_from_ranks(*ranks)
    scores = {name: all_scores[name] for name in spec.metrics}
    return Outcome(scores, len(data.images), len(data.texts), None, None, seconds, cached,
                   retrieval_resampler(*ranks, spec.metrics))


def pair(spec, data, encoder: Encoder, cache: ImageEmbeddingCache,
         language: str, batch_size: int, num_workers: int) -> Outcome:
    images, seconds, cached = cache.get(encoder, data.images, batch_size, num_workers)
    texts = embed_texts(encoder, data.texts, batch_size)
    scores = metrics.pair_scores(images, texts)
    validation, test = scores[: data.n_validation], scores[data.n_validation:]
    found = metrics.pair_metrics(validation, test, data.labels)
    threshold = found.pop("threshold")

    def resample(rng):  # test pairs resampled; the threshold stays the validation median
        idx = rng.integers(0, len(test), len(test))
        return {k: v for k, v in metrics.pair_metrics(validation, test[idx], data.labels[idx]).items() if k in spec.metrics}

    outcome = Outcome({k: found[k] for k in spec.metrics}, len(data.images), len(data.texts), None, None,
                      seconds, cached, resample)
    outcome.extra = {"text_field": data.text_field, "threshold": threshold, "n_validation": data.n_validation,
                     "n_test": len(test)}
    return outcome


EVALUATORS = {"classification": classification, "retrieval": retrieval, "pair": pair}


def evaluate(spec: TaskSpec, data, encoder: Encoder, cache: ImageEmbeddingCache, language: str,
             batch_size: int = 64, num_workers: int = 2) -> Outcome:
    return EVALUATORS[spec.kind](spec, data, encoder, cache, language, batch_size, num_workers)

"""Evaluation uncertainty from stored per-query outcomes: resample queries with replacement, recompute
the metrics, report the standard error and a 95% percentile interval. Nothing is re-embedded."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from . import metrics

Resampler = Callable[[np.random.Generator], dict[str, float]]


def bootstrap(resample: Resampler, draws: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    samples = [resample(rng) for _ in range(draws)]
    names = list(samples[0])
    values = {name: np.array([s[name] for s in samples]) for name in names}
    return {
        "n": draws,
        "seed": seed,
        "stderr": {name: float(v.std(ddof=1)) for name, v in values.items()},
        "ci95": {name: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for name, v in values.items()},
    }


def classification_resampler(logits: torch.Tensor, labels: torch.Tensor, names: list[str]) -> Resampler:
    """Resamples images. Top-k hits and predictions are computed once; metrics that need the whole
    score distribution (map_11point, roc_auc) are recomputed from the stored probabilities."""
    n = logits.shape[0]
    labels_np = labels.cpu().numpy()
    per_sample = {}
    if labels.dim() == 1:
        for name, k in (("acc1", 1), ("acc5", 5)):
            if name in names:
                per_sample[name] = metrics.topk_hits(logits, labels, k).cpu().numpy()
        preds = logits.argmax(dim=1).cpu().numpy()
    needs_probabilities = [m for m in names if m in ("map_11point", "roc_auc")]
    probabilities = metrics.elevater_probabilities(logits) if needs_probabilities else None

    def resample(rng: np.random.Generator) -> dict[str, float]:
        idx = rng.integers(0, n, n)
        out = {}
        for name in names:
            if name in per_sample:
                out[name] = float(per_sample[name][idx].mean())
            elif name == "mean_per_class_recall":
                from sklearn.metrics import balanced_accuracy_score

                out[name] = float(balanced_accuracy_score(labels_np[idx], preds[idx]))
            elif name == "map_11point":
                targets = labels_np[idx] if labels_np.ndim == 2 else np.eye(logits.shape[1], dtype=np.int64)[labels_np[idx]]
                out[name] = metrics.map_11point(probabilities[idx], targets)
            elif name == "roc_auc":
                out[name] = metrics.roc_auc(probabilities[idx], labels_np[idx])
        return out

    return resample


def retrieval_resampler(t2i_rank: torch.Tensor, i2t_rank: torch.Tensor, names: list[str]) -> Resampler:
    """Resamples the caption queries (text->image) and the image queries (image->text) independently,
    the gallery held fixed."""
    t2i, i2t = t2i_rank.numpy(), i2t_rank.numpy()

    def resample(rng: np.random.Generator) -> dict[str, float]:
        scores = metrics.recalls_from_ranks(
            torch.from_numpy(t2i[rng.integers(0, len(t2i), len(t2i))]),
            torch.from_numpy(i2t[rng.integers(0, len(i2t), len(i2t))]),
        )
        return {name: scores[name] for name in names}

    return resample

"""Task kinds, the unit of extension: one module per kind (classification, retrieval, pair) declares its
metric records, its pre-model checks, its scoring and its query sets. What lives here serves every kind:
per-query outcomes, metric values, and the one bootstrap.

A metric is one record, as in lm-evaluation-harness's MetricSpec: the per-query outcomes it reads and how it
aggregates them into one number. Its value and its bootstrap interval both come from that record, so a metric
added to its kind's METRICS gets both, and a metric cannot have one without the other.

Importing this package is cheap (no torch, no sklearn): the task loader and the tables read the records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..specs import TaskSpec
from . import classification, pair, retrieval
from .base import Column, Kind, Metric, Outcome, Queries, bootstrap, measure, no_check

if TYPE_CHECKING:
    from ..embed import ImageEmbeddingCache
    from ..models.base import Encoder

__all__ = ["Column", "Kind", "Metric", "Outcome", "Queries", "KINDS", "METRICS_BY_KIND", "bootstrap",
           "check", "evaluate", "measure", "no_check", "unknown_metric"]

KINDS: dict[str, Kind] = {kind.name: kind for kind in (classification.KIND, retrieval.KIND, pair.KIND)}
METRICS_BY_KIND: dict[str, tuple[str, ...]] = {name: kind.metric_names() for name, kind in KINDS.items()}


def evaluate(task: TaskSpec, data, encoder: Encoder, cache: ImageEmbeddingCache, language: str,
             batch_size: int = 64, num_workers: int = 2) -> Outcome:
    kind = KINDS[task.kind]
    scores, outcome = kind.score(task, data, encoder, cache, language, batch_size, num_workers)
    outcome.queries = measure(kind, scores, task.metrics)
    outcome.metrics = outcome.queries.values()
    return outcome


def check(task: TaskSpec, data, language: str) -> None:
    """The kind's pre-model checks: a mismatch fails in seconds, before any model is loaded."""
    KINDS[task.kind].check(task, data, language)


def unknown_metric(kind: str, metrics: list[str]) -> str | None:
    """The problem with the first of `metrics` that is not a `kind` metric, or None."""
    allowed = list(KINDS[kind].metric_names())
    for metric in metrics:
        if metric not in allowed:
            return f"metric '{metric}' is not one of the {kind} metrics {allowed}"
    return None

"""Task kinds, the unit of extension: one module per kind (classification, retrieval, pair) declares its
metric records, its pre-model checks, its scoring and its query sets. What lives here serves every kind:
per-query outcomes, metric values, and the one bootstrap.

A metric is one record, as in lm-evaluation-harness's MetricSpec: the per-query outcomes it reads and how it
aggregates them into one number. Its value and its bootstrap interval both come from that record, so a metric
added to its kind's METRICS gets both, and a metric cannot have one without the other.

Importing this package is cheap (no torch, no sklearn): the task loader and the tables read the records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from ..specs import TaskSpec
from . import classification, pair, retrieval
from .base import Column, Kind, KindOption, Metric, Outcome, Queries, bootstrap, center_crop, measure, no_check

if TYPE_CHECKING:
    from ..embed import EmbeddingCache
    from ..models.base import Encoder

__all__ = ["Column", "Kind", "KindOption", "Metric", "Outcome", "Queries", "KINDS", "METRICS_BY_KIND", "bootstrap",
           "apply_options", "center_crop", "check", "evaluate", "facts", "measure", "no_check", "predictions",
           "under_protocol", "unknown_metric", "variant_of"]

KINDS: dict[str, Kind] = {kind.name: kind for kind in (classification.KIND, retrieval.KIND, pair.KIND)}
METRICS_BY_KIND: dict[str, tuple[str, ...]] = {name: kind.metric_names() for name, kind in KINDS.items()}


def evaluate(task: TaskSpec, data, encoder: Encoder, cache: EmbeddingCache, language: str,
             batch_size: int = 64, num_workers: int = 2, settings: dict | None = None) -> Outcome:
    """`settings`: what the run's protocol resolved to for this task and language (ProtocolSpec.settings);
    None = clipbench's defaults. `task`'s metric names are the protocol's (`under_protocol`)."""
    kind = KINDS[task.kind]
    scores, outcome = kind.score(task, data, encoder, cache, language, batch_size, num_workers, settings or {})
    outcome.queries = measure(kind, scores, task.metrics)
    outcome.metrics = outcome.queries.values()
    outcome.scores = scores
    return outcome


def under_protocol(task: TaskSpec, settings: dict | None) -> TaskSpec:
    """The task as a protocol scores it: the metrics its settings replace by others (its kind's `renames`: under
    multilabel_map = "non-interpolated", map_11point becomes mean_average_precision), main score included, so
    that a result names what it measured. The task itself where nothing is replaced."""
    swap = KINDS[task.kind].renames(settings or {})
    if not any(name in swap for name in task.metrics):
        return task
    names = list(dict.fromkeys(swap.get(name, name) for name in task.metrics))
    return task.model_copy(update={"metrics": names, "main_score": swap.get(task.main_score, task.main_score)})


def predictions(task: TaskSpec, outcome: Outcome) -> Iterator[dict]:
    """One line per query of `outcome`, as its kind defines it (--save-predictions)."""
    lines = KINDS[task.kind].predictions
    if lines is None:  # a programming error, not bad input: never an empty file that looks like a result
        raise NotImplementedError(f"the {task.kind} kind defines no prediction lines")
    return lines(outcome.scores)


def check(task: TaskSpec, data, language: str, settings: dict | None = None) -> None:
    """The kind's pre-model checks: a mismatch fails in seconds, before any model is loaded."""
    KINDS[task.kind].check(task, data, language, settings or {})


def facts(task: TaskSpec, data, language: str, settings: dict | None = None) -> dict:
    """What a result of this job will record that is known before the model loads (see Kind.facts)."""
    return KINDS[task.kind].facts(task, data, language, settings or {})


def unknown_metric(kind: str, metrics: list[str]) -> str | None:
    """The problem with the first of `metrics` that is not a `kind` metric (or with `kind`), or None."""
    if kind not in KINDS:
        return f"kind '{kind}' is not one of {list(KINDS)}"
    allowed = list(KINDS[kind].metric_names())
    for metric in metrics:
        if metric not in allowed:
            return f"metric '{metric}' is not one of the {kind} metrics {allowed}"
    return None


def apply_options(tasks: list[TaskSpec], values: dict[str, str | None]) -> list[TaskSpec]:
    """Kind-specific command-line options (by RunOptions field name; None = not given) applied to the tasks of
    the kinds that take them. A value outside the option's choices, or an option no task's kind takes, is refused."""
    from ..errors import ClipbenchError

    for name, value in values.items():
        if value is None:
            continue
        takers = [kind for kind in KINDS.values() if name in kind.options]
        option = takers[0].options[name]
        if value not in option.choices:
            raise ClipbenchError(f"{option.flag} must be {' or '.join(option.choices)}, not '{value}'", exit_code=2)
        if not any(task.kind in {kind.name for kind in takers} for task in tasks):
            raise ClipbenchError(f"{option.flag} applies to {option.applies_to} and none of "
                                 f"{', '.join(task.name for task in tasks)} is one; drop {option.flag}", exit_code=2)
        tasks = [option.apply(task, value) if name in KINDS[task.kind].options else task for task in tasks]
    return tasks


def variant_of(task: TaskSpec, data) -> str | None:
    """The variant a result of `task` records and its file name carries (pair scoring: its text field)."""
    return KINDS[task.kind].variant(data)

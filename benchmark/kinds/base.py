"""What every task kind is made of: per-query outcome columns, metric records, the kind record, the
outcome of one evaluation, and the one bootstrap over stored per-query outcomes. The kind modules build
their records from these; benchmark.kinds collects them (see its docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from ..specs import ProtocolSpec, TaskSpec

if TYPE_CHECKING:
    from ..prompts import Prompts


@dataclass(frozen=True)
class Column:
    """A per-query outcome (a top-1 hit, a rank, a predicted label): one row per query of the query set
    `queries`, computed once from the kind's scores."""

    name: str
    queries: str
    compute: Callable[[dict], np.ndarray]


@dataclass(frozen=True)
class Metric:
    """A metric: `aggregate` turns the per-query outcomes it `reads` (all queries, or a bootstrap resample,
    passed in `reads` order) into one number."""

    name: str
    reads: tuple[Column, ...]
    aggregate: Callable[..., float]
    higher_is_better: bool = True
    # protocol settings the aggregate takes as keyword arguments (e.g. "tie_rule"), from the scores' "settings"
    options: tuple[str, ...] = ()


@dataclass
class Outcome:
    """One evaluation: the metric values, the per-query outcomes they came from, and facts for the record."""

    n_images: int
    n_texts: int
    image_seconds: float = 0.0
    images_cached: bool = False
    n_classes: int | None = None
    prompts: Prompts | None = None
    extra: dict | None = None  # kind-specific facts worth recording (pair scoring: text field, threshold)
    metrics: dict[str, float] = field(default_factory=dict)
    queries: Queries | None = None  # for --bootstrap
    scores: dict | None = None  # what the kind scored, for its prediction lines (--save-predictions)
    images_from_disk: bool | None = None  # the image embeddings were read whole from the disk cache (None: off)
    texts_from_disk: bool | None = None  # likewise the text embeddings (the classifier, the captions)
    images_embedded: int | None = None  # images this job embedded itself (0: reused or read from the disk cache)

    def embedded_with(self, images, texts) -> "Outcome":
        """Where the embeddings came from (benchmark.embed.Embedded records of the images and the texts)."""
        self.images_from_disk, self.texts_from_disk, self.images_embedded = images.from_disk, texts.from_disk, images.embedded
        return self


Scoring = Callable[..., "tuple[dict, Outcome]"]


@dataclass(frozen=True)
class KindOption:
    """A command-line option of one kind: its flag, the values it takes, and how a value changes a task."""

    flag: str
    choices: tuple[str, ...]
    apply: Callable[[TaskSpec, str], TaskSpec]
    applies_to: str  # said when no task takes it, e.g. "pair-scoring tasks (news-thumbnails)"


@dataclass(frozen=True)
class Kind:
    name: str
    metrics: tuple[Metric, ...]  # the only list of this kind's metric names
    # query set -> its size from the scores. The bootstrap draws each set with replacement, independently,
    # in this order (the order of the random draws is part of the result: keep it).
    query_sets: dict[str, Callable[[dict], int]]
    # (task, data, language, protocol settings) -> None; raises ClipbenchError. Runs for every job before the model loads.
    check: Callable[[TaskSpec, Any, str, dict], None]
    # (task, data, encoder, embedding cache (benchmark.embed.EmbeddingCache), language, batch size, workers, protocol settings)
    #   -> (scores the columns read, Outcome)
    score: Scoring
    # command-line options only this kind takes (pair scoring: --text-field), by RunOptions field name
    options: dict[str, "KindOption"] = field(default_factory=dict)
    # data -> the variant a result records and its file name carries (pair scoring: the text field), or None
    variant: Callable[[Any], "str | None"] = lambda data: None
    # scores -> one JSON-ready dict per query, in dataset order: what --save-predictions writes (every kind
    # defines it; None only while a new kind is being written, and then --save-predictions refuses it)
    predictions: "Callable[[dict], Iterator[dict]] | None" = None
    # protocol settings -> {metric name: the metric that replaces it}: a variant that is another number under
    # another name (classification: multilabel_map = "non-interpolated" makes map_11point mean_average_precision)
    renames: Callable[[dict], dict[str, str]] = lambda settings: {}
    # (task, data, language, protocol settings) -> what a result of this job will record that is known before the
    # model loads: n_texts, n_classes, prompts (a Prompts or None). A rerun compares them with an earlier result
    # to decide whether it is the same measurement (run --overwrite); a fact left out is not compared.
    facts: Callable[[TaskSpec, Any, str, dict], dict] = lambda task, data, language, settings: {}

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise ValueError(f"metric '{name}' is not one of the {self.name} metrics {list(self.metric_names())}")

    def metric_names(self) -> tuple[str, ...]:
        return tuple(metric.name for metric in self.metrics)


@dataclass(frozen=True)
class Queries:
    """The per-query outcomes of one evaluation that its metrics read, and those metrics."""

    metrics: tuple[Metric, ...]
    sizes: dict[str, int]  # query set -> number of queries, in the kind's draw order
    columns: dict[str, tuple[str, np.ndarray]]  # column name -> (query set, one row per query)
    settings: dict = field(default_factory=dict)  # the protocol settings the metrics' `options` name

    def values(self) -> dict[str, float]:
        return {m.name: m.aggregate(*(self.columns[c.name][1] for c in m.reads),
                                    **{option: setting(self.settings, option) for option in m.options}) for m in self.metrics}

    def resample(self, rng: np.random.Generator) -> Queries:
        """The same number of queries of each set, drawn with replacement (the gallery stays fixed)."""
        drawn = {name: rng.integers(0, n, n) for name, n in self.sizes.items()}
        return Queries(self.metrics, self.sizes,
                       {name: (queries, rows[drawn[queries]]) for name, (queries, rows) in self.columns.items()},
                       self.settings)


def setting(settings: dict | None, name: str):
    """A protocol setting as ProtocolSpec.settings resolved it, or its default where it is absent (clipbench's
    defaults, and settings that results written before them do not record)."""
    value = (settings or {}).get(name)
    return ProtocolSpec.model_fields[name].default if value is None else value


def measure(kind: Kind, scores: dict, names: list[str]) -> Queries:
    """The per-query outcomes that the metrics `names` read, each column computed once. The protocol settings a
    metric takes come from scores["settings"] (absent: the defaults)."""
    chosen = tuple(kind.metric(name) for name in names)
    needed = {column.name: column for metric in chosen for column in metric.reads}
    options = {option: setting(scores.get("settings"), option) for metric in chosen for option in metric.options}
    return Queries(chosen, {name: size(scores) for name, size in kind.query_sets.items()},
                   {name: (column.queries, column.compute(scores)) for name, column in needed.items()}, options)


def bootstrap(queries: Queries, draws: int, seed: int) -> dict:
    """Evaluation uncertainty from the stored per-query outcomes: resample the queries, recompute every metric,
    report the standard error and the 95% percentile interval. Nothing is re-embedded."""
    rng = np.random.default_rng(seed)
    samples = [queries.resample(rng).values() for _ in range(draws)]
    values = {name: np.array([s[name] for s in samples]) for name in samples[0]}
    return {
        "n": draws,
        "seed": seed,
        "stderr": {name: float(v.std(ddof=1)) for name, v in values.items()},
        "ci95": {name: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for name, v in values.items()},
    }


def center_crop(task: TaskSpec, settings: dict) -> bool:
    """Whether images are resized on their short side and centre-cropped (the model's own transform) or
    squashed to the input size, under a protocol's `preprocessing` (see specs.ProtocolSpec)."""
    chosen = settings.get("preprocessing", "task")
    if chosen == "square":
        return False
    if chosen == "model":
        return True
    return bool(task.dataset.options.get("center_crop", True))


def no_check(task: TaskSpec, data, language: str, settings: dict | None = None) -> None:
    """For kinds whose data needs no check beyond what its reader does."""

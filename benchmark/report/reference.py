"""Published numbers and the papers' table layouts.

`results/reference/<name>.json` holds what a paper published, converted to this project's task and metric
names (values as fractions in [0, 1], std over training runs where the paper gives one). `load(name)` turns a
file into `Published` values that `table.build_table` shows as "<label> (published)" rows next to run results.
`LAYOUTS` describe the papers' tables (column labels, order, decimals) so `clipbench table --layout` can
regenerate them from runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ClipbenchError
from ..kinds import METRICS_BY_KIND
from ..registry import Registry

REFERENCE_KIND = "clipbench-reference"
KNOWN_METRICS = {m for names in METRICS_BY_KIND.values() for m in names}


# ------------------------------------------------------------------------------------------ published values

@dataclass(frozen=True)
class RefModel:
    key: str  # the paper's name for the row
    label: str  # row label in tables
    reproduced_by: tuple[str, ...] = ()  # clipbench model groups whose runs reproduce this row
    runs: int = 1  # training runs behind each published value (mean ± std when > 1)

    def matches(self, group: str) -> bool:
        return group == self.key or group in self.reproduced_by


@dataclass(frozen=True)
class Published:
    model: RefModel
    language: str
    metric: str  # a metric name; "main" for a suite average
    value: float  # fraction
    std: float | None = None  # fraction
    task: str | None = None
    suite: str | None = None

    @property
    def column(self) -> tuple[str, str, str]:
        return (self.task or f"suite:{self.suite}", self.language, self.metric)


@dataclass(frozen=True)
class Reference:
    name: str
    source: str
    path: str
    models: tuple[RefModel, ...]
    values: tuple[Published, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def model_for(self, group: str) -> RefModel | None:
        return next((m for m in self.models if m.matches(group)), None)


def reference_dir() -> Path:
    from ..paths import data_dir

    return data_dir("results") / "reference"


def available() -> list[str]:
    try:
        return sorted(p.stem for p in reference_dir().glob("*.json"))
    except ClipbenchError:
        return []


def load(name: str | Path) -> Reference:
    """A reference by name (results/reference/<name>.json) or by path to such a file."""
    path = Path(name)
    if not (path.suffix == ".json" and path.is_file()):
        known = available()
        if str(name) not in known:
            registry: Registry[str] = Registry("reference")
            for item in known:
                registry.register(item, item)
            message = registry.unknown_message(str(name)).split(" See ")[0]
            raise ClipbenchError(f"{message} Known references: {', '.join(known) or 'none found'} "
                                 "(files in results/reference/), or pass a path to such a file.", exit_code=2)
        path = reference_dir() / f"{name}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ClipbenchError(f"{path}: not a readable reference file ({exc})") from None
    return parse(raw, str(path))


def parse(raw: dict, where: str) -> Reference:
    from ..tasks import suite_registry, task_registry

    if not isinstance(raw, dict) or raw.get("kind") != REFERENCE_KIND:
        raise ClipbenchError(f"{where}: not a clipbench reference file (needs \"kind\": \"{REFERENCE_KIND}\")")
    if raw.get("schema_version", 0) > 1:
        raise ClipbenchError(f"{where}: schema_version {raw['schema_version']} is newer than this clipbench; upgrade")
    models = {key: RefModel(key, spec.get("label", key), tuple(spec.get("reproduced_by", [])), int(spec.get("runs", 1)))
              for key, spec in raw.get("models", {}).items()}
    tasks, suites = task_registry(), suite_registry()
    values = []
    for i, entry in enumerate(raw.get("values", [])):
        here = f"{where}: values[{i}]"
        if entry.get("model") not in models:
            raise ClipbenchError(f"{here}: model '{entry.get('model')}' is not listed under 'models'")
        if bool(entry.get("task")) == bool(entry.get("suite")):
            raise ClipbenchError(f"{here}: give exactly one of 'task' or 'suite'")
        if entry.get("task") and entry["task"] not in tasks:
            raise ClipbenchError(f"{here}: {tasks.unknown_message(entry['task'])}")
        if entry.get("suite") and entry["suite"] not in suites:
            raise ClipbenchError(f"{here}: {suites.unknown_message(entry['suite'])}")
        metric = entry.get("metric", "main")
        if metric not in KNOWN_METRICS and not (metric == "main" and entry.get("suite")):
            raise ClipbenchError(f"{here}: unknown metric '{metric}' (known: {', '.join(sorted(KNOWN_METRICS))})")
        value, std = entry.get("value"), entry.get("std")
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ClipbenchError(f"{here}: 'value' must be a fraction in [0, 1], got {value!r}")
        if std is not None and (not isinstance(std, (int, float)) or std < 0):
            raise ClipbenchError(f"{here}: 'std' must be a non-negative fraction or null, got {std!r}")
        values.append(Published(models[entry["model"]], entry["language"], metric, float(value),
                                None if std is None else float(std), entry.get("task"), entry.get("suite")))
    return Reference(raw.get("name", Path(where).stem), raw.get("source", ""), where, tuple(models.values()),
                     tuple(values), tuple(raw.get("notes", [])))


# ------------------------------------------------------------------------------------------------ layouts

@dataclass(frozen=True)
class Column:
    label: str
    task: str | None = None
    suite: str | None = None
    language: str = "en"
    metric: str = "main"  # "main": the task's main score (or the suite's mean of them)
    group: str = ""  # upper header line; "" for none

    def resolved(self) -> "Column":
        """The same column with "main" replaced by the task's main-score metric name."""
        if self.task and self.metric == "main":
            from ..tasks import task_registry

            return Column(self.label, self.task, None, self.language, task_registry().get(self.task).main_score, self.group)
        return self

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.task or f"suite:{self.suite}", self.language, self.metric)


@dataclass(frozen=True)
class Layout:
    name: str
    title: str
    reference: str  # the reference file whose rows and labels this table is
    columns: tuple[Column, ...]
    protocol: str  # the protocol (protocols/<name>.toml) the paper's numbers were measured under
    decimals: int = 2


# CAPIVARA's column names (shared/data/reference/capivara.json, in its order) -> clipbench ELEVATER tasks.
CAPIVARA_ELEVATER = {
    "Caltech-101": "caltech-101", "CIFAR-10": "cifar-10", "CIFAR-100": "cifar-100", "Country-211": "country211",
    "DTD": "dtd", "EuroSAT": "eurosat-clip", "FER-2013": "fer-2013", "FGVC-Aircraft": "fgvc-aircraft-2013b-variants102",
    "Food-101": "food-101", "GTSRB": "gtsrb", "Hateful-Memes": "hateful-memes", "KITTI-Distance": "kitti-distance",
    "MNIST": "mnist", "Oxford Flowers-102": "oxford-flower-102", "Oxford-IIIT Pets": "oxford-iiit-pets",
    "PatchCamelyon": "patch-camelyon", "Rendered-SST2": "rendered-sst2", "RESISC-45": "resisc45-clip",
    "Stanford-Cars": "stanford-cars", "PASCAL VOC-2007": "voc-2007-classification",
}
# CAPIVARA's retrieval keys -> (column group label, task). Its Flickr30k numbers are on the Karpathy VAL split.
CAPIVARA_RETRIEVAL = {"flickr30k-pt": ("Flickr30k", "flickr30k-val"), "mscoco-pt": ("MS COCO", "mscoco"),
                      "pracegover": ("PraCegoVer", "pracegover")}
CAPIVARA_DIRECTIONS = {"t2i": ("text-to-image", "t2i_mean_recall"), "i2t": ("image-to-text", "i2t_mean_recall")}
# AltCLIP's column keys (shared/data/reference/altclip.json "columns") -> metrics; blocks -> (label, task).
ALTCLIP_COLUMNS = {
    "t2i_R@1": "t2i_recall@1", "t2i_R@5": "t2i_recall@5", "t2i_R@10": "t2i_recall@10",
    "i2t_R@1": "i2t_recall@1", "i2t_R@5": "i2t_recall@5", "i2t_R@10": "i2t_recall@10", "MR": "mean_recall",
}
ALTCLIP_BLOCKS = {"en": ("Flickr30k en", "flickr30k"), "zh": ("Flickr30k zh", "flickr30k-cn")}

LAYOUTS: dict[str, Layout] = {
    "capivara-retrieval": Layout(
        "capivara-retrieval", "CAPIVARA: zero-shot cross-modal retrieval, mean recall (pt)", "capivara",
        tuple(Column(label, task=task, language="pt", metric=metric, group=group)
              for group, task in CAPIVARA_RETRIEVAL.values() for label, metric in CAPIVARA_DIRECTIONS.values()),
        protocol="capivara"),
    "capivara-elevater": Layout(
        "capivara-elevater", "CAPIVARA: zero-shot image classification, ELEVATER and ImageNet-1k (pt)", "capivara",
        tuple(Column(label, task=task, language="pt") for label, task in CAPIVARA_ELEVATER.items())
        + (Column("Average", suite="elevater", language="pt"), Column("ImageNet-1k", task="imagenet1k", language="pt", metric="acc1")),
        protocol="capivara"),
    "altclip-flickr30k": Layout(
        "altclip-flickr30k", "AltCLIP: zero-shot retrieval on Flickr30k (en) and Flickr30k-CN (zh)", "altclip",
        tuple(Column(key, task=task, language=lang, metric=metric, group=group)
              for lang, (group, task) in ALTCLIP_BLOCKS.items() for key, metric in ALTCLIP_COLUMNS.items()),
        protocol="clip-benchmark", decimals=1),  # protocols/altclip.toml is an alias of clip-benchmark (FlagAI)
}


def layout(name: str) -> Layout:
    registry: Registry[Layout] = Registry("layout")
    for key, item in LAYOUTS.items():
        registry.register(key, item)
    if name not in registry:
        raise ClipbenchError(registry.unknown_message(name).split(" See ")[0] + f" Layouts: {', '.join(LAYOUTS)}.", exit_code=2)
    return registry.get(name)

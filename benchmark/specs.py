"""Strict, typed specs for tasks, suites and models, and the helpers that read and report on them.
Unknown keys and missing fields are errors."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ClipbenchError
from .sources import HUB_KINDS, Source, legacy_sources

LANGUAGE_PATTERN = r"^[a-z]{2,3}$"


def describe_validation_error(path: Path | str, error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(file)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "required field is missing"
        parts.append(f"field '{field}': {message}")
    return f"{path}: " + "; ".join(parts)


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ClipbenchError(f"{path}: not valid TOML ({exc}); fix the file") from None
    except UnicodeDecodeError as exc:
        raise ClipbenchError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ClipbenchError(f"{path}: cannot be read ({exc.strerror or exc}); check the path and its permissions") from None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Location(BaseModel):
    """Where a dataset's files are and where a person gets them: the fields every on-disk format shares (its
    options class extends this one). Other places to get them are the task's typed `sources` (benchmark.sources)."""

    model_config = ConfigDict(extra="forbid")
    path: str  # the dataset's folder: absolute, or relative to the data root
    download: str = ""  # where a person gets the files, named when they are missing


class HubSource(Location):
    """A task's folder and its first hub source, in the flat form `clipbench data download` and `run` read
    (benchmark.data.source builds it from the task's typed `sources`)."""

    hub: Optional[str] = None  # a Hugging Face dataset repository holding them, e.g. clip-benchmark/wds_cifar10
    revision: Optional[str] = None  # its branch, tag or commit (default: main)
    hub_files: Optional[list[str]] = None  # allow_patterns, e.g. ["test/*", "*.txt"]; default: every file
    # true: read the files where huggingface_hub caches them (a `hub-webdataset` source); false: archives to unpack
    hub_cache: bool = False


class DatasetSpec(BaseModel):
    """Where the data is and in which layout. Keys beyond `format` belong to that format's options."""

    model_config = ConfigDict(extra="allow", frozen=True)
    format: str

    @property
    def options(self) -> dict:
        return dict(self.model_extra or {})


class TaskSpec(Strict):
    # a task file's name is its file name; a `/` comes only from CLIP_benchmark's webdataset names (wds/vtab/cifar10)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")
    kind: str = Field(pattern=r"^[a-z][a-z_-]*$")  # one of benchmark.kinds.KINDS: checked where task files load
    description: str
    languages: list[str] = Field(min_length=1)
    split: str
    metrics: list[str] = Field(min_length=1)  # each one of its kind's metrics: checked where task files load
    main_score: str
    dataset: DatasetSpec
    prompts: Optional[str] = None  # prompts/<language>/<prompts>.json, classification only
    num_classes: Optional[int] = Field(default=None, gt=1)
    expected_images: Optional[int] = Field(default=None, gt=0)  # the published split size; `data check` compares
    expected_texts: Optional[int] = Field(default=None, gt=0)
    # languages whose data is another task's: `flickr30k` in zh is `flickr30k-cn` (Flickr30k-CN's own split)
    language_tasks: dict[str, str] = Field(default_factory=dict)
    # where else the data can come from, in order of preference, after [dataset]'s folder (benchmark.sources)
    sources: list[Source] = Field(default_factory=list)
    source_file: str = ""

    @model_validator(mode="before")
    @classmethod
    def _legacy_hub_keys(cls, raw):
        """`hub`, `revision`, `hub_files` and `hub_cache` in [dataset] (task files written before typed sources)
        become the source they described."""
        if not isinstance(raw, dict) or raw.get("dataset") is None:
            return raw
        dataset = raw["dataset"]
        dataset = dataset.model_dump() if isinstance(dataset, BaseModel) else dataset
        if not isinstance(dataset, dict) or not dataset.get("hub"):
            return raw
        if raw.get("sources"):
            raise ValueError("[dataset] names a hub source ('hub') and [[sources]] lists others; move it to [[sources]] "
                             "(kind = \"hub-webdataset\" or \"hub-archive\", repository = ...)")
        rest, sources = legacy_sources(dataset)
        return {**raw, "dataset": rest, "sources": sources}

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str]) -> list[str]:
        import re

        for lang in value:
            if not re.match(LANGUAGE_PATTERN, lang):
                raise ValueError(f"'{lang}' is not a language code (use ISO 639-1, e.g. en, pt, zh)")
        if len(set(value)) != len(value):
            raise ValueError("a language is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "TaskSpec":
        if self.main_score not in self.metrics:
            raise ValueError(f"main_score '{self.main_score}' must be one of metrics {self.metrics}")
        for lang in self.language_tasks:
            if lang in self.languages:
                raise ValueError(f"language_tasks: '{lang}' is already one of languages {self.languages}")
        return self

    def hub_sources(self) -> list:
        """Its hub sources (webdatasets, archives), in order of preference."""
        return [source for source in self.sources if source.kind in HUB_KINDS]

    @property
    def offered_languages(self) -> list[str]:
        """Its own languages, then those it keeps in other tasks (`language_tasks`)."""
        return list(self.languages) + list(self.language_tasks)


class SuiteSpec(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    tasks: list[str] = Field(min_length=1)
    aggregate: Literal["mean"] = "mean"
    source_file: str = ""


class CheckpointSpec(Strict):
    """One checkpoint of a model (e.g. a training seed): fields given here replace the model's."""

    name: str
    id: Optional[str] = None
    pretrained: Optional[str] = None
    revision: Optional[str] = None


class ModelSpec(Strict):
    name: str
    backend: Literal["open_clip", "transformers"]
    id: str  # open_clip: architecture, 'hf-hub:org/name' or 'local-dir:PATH'; transformers: hub id or directory
    pretrained: Optional[str] = None  # open_clip pretrained tag or checkpoint file
    revision: Optional[str] = None
    languages: list[str] = Field(default_factory=list)  # empty: not declared
    licence: str = "unknown"
    context_length: Optional[int] = None
    parameters: Optional[int] = None
    notes: str = ""
    checkpoints: list[CheckpointSpec] = Field(default_factory=list)  # several: results aggregate to mean ± std

    def variants(self) -> list[tuple[Optional[str], "ModelSpec"]]:
        """(checkpoint name, spec to load) for every checkpoint; the spec itself when it lists none."""
        if not self.checkpoints:
            return [(None, self)]
        out = []
        for checkpoint in self.checkpoints:
            changes = {k: v for k, v in checkpoint.model_dump().items() if k != "name" and v is not None}
            out.append((checkpoint.name, self.model_copy(update={**changes, "checkpoints": []})))
        return out


AVERAGING = Literal["normalise-then-mean", "mean-then-normalise"]
PREPROCESSING = Literal["model", "task", "square"]
TIE_RULE = Literal["lower-index", "topk-per-k"]
MULTILABEL_MAP = Literal["11-point", "non-interpolated"]
TOPK_BEYOND_CLASSES = Literal["capped", "nan"]
RECALL_ARGMAX = Literal["present-classes", "all-classes"]
# the resize's interpolation when a protocol squashes images to a square: "model" (the weights' own) or "bicubic"
# (Chinese-CLIP's image_transform, whatever the model); see models.base.Encoder.transform
INTERPOLATION = Literal["model", "bicubic"]
PRECISION = Literal["fp32", "bf16", "fp16"]  # autocast dtypes (models.base.PRECISIONS); similarities stay float32


class ProtocolSource(Strict):
    """The upstream evaluation script a protocol follows."""

    repository: str
    commit: str = Field(pattern=r"^[0-9a-f]{7,40}$")
    path: str


class ProtocolTask(Strict):
    """A protocol's settings for one task; unset fields take the protocol's."""

    template_averaging: Optional[AVERAGING] = None
    preprocessing: Optional[PREPROCESSING] = None
    prompts: dict[str, str] = Field(default_factory=dict)  # language -> prompt file name under prompts/<language>/
    interpolation: Optional[INTERPOLATION] = None
    precision: Optional[PRECISION] = None


class ProtocolSpec(Strict):
    """A paper's evaluation choices (DESIGN.md 2b). Unset = clipbench's default:
    - template_averaging: "normalise-then-mean" (CLIP_benchmark, ours) or "mean-then-normalise" (raw template
      embeddings averaged, then normalised: CAPIVARA's run_evaluation)
    - preprocessing: "task" (the model's resize + centre crop, unless the task file sets center_crop = false),
      "model" (the model's own everywhere), "square" (squash every image to the input size: Chinese-CLIP)
    - tie_rule: "lower-index" (equal scores rank by increasing index: top-k accuracy, retrieval ranks, the
      prediction lines) or "topk-per-k" (CLIP_benchmark: the torch.topk calls it makes, one per K for retrieval,
      one of the widest k for top-k accuracy, torch.sort for mean_average_precision; torch picks among equals)
    - multilabel_map: "11-point" (ELEVATER's interpolated mAP on softmax probabilities, metric map_11point) or
      "non-interpolated" (CLIP_benchmark's mean AP on the logits, every class counted: a task's map_11point is
      replaced by the metric mean_average_precision, main score included)
    - topk_beyond_classes: "capped" (acc5 with fewer than 5 classes caps k at the class count: 1.0) or "nan"
      (CLIP_benchmark: acc5 is NaN below 5 classes)
    - recall_argmax: "present-classes" (mean_per_class_recall's argmax over the classes with test images:
      ELEVATER) or "all-classes" (over every class, so predicting an absent class is a miss: CLIP_benchmark)
    The metric settings (tie_rule and below) hold for every task: a paper scores all its datasets with one
    function, so a protocol file sets them at the top, not per task."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    source: Optional[ProtocolSource] = None
    template_averaging: AVERAGING = "normalise-then-mean"
    preprocessing: PREPROCESSING = "task"
    tie_rule: TIE_RULE = "lower-index"
    multilabel_map: MULTILABEL_MAP = "11-point"
    topk_beyond_classes: TOPK_BEYOND_CLASSES = "capped"
    recall_argmax: RECALL_ARGMAX = "present-classes"
    # unset or "model": the weights' own; "bicubic" (with preprocessing "square"): Chinese-CLIP's image_transform,
    # resize to the input size with bicubic interpolation, RGB, ToTensor, the weights' mean and std
    interpolation: Optional[INTERPOLATION] = None
    # unset = fp32: the autocast precision of the paper's evaluation, used when `run` gets no --precision (an explicit
    # --precision wins; a result records the one it ran at in run.precision). These two are recorded in a result's
    # settings only where the protocol sets them, so the settings of those that do not (clipbench's) stay as they were.
    precision: Optional[PRECISION] = None
    tasks: dict[str, ProtocolTask] = Field(default_factory=dict)
    # another protocol's name: this one is that protocol (results record that name, so they compare)
    alias_of: Optional[str] = None
    source_file: str = ""

    @model_validator(mode="after")
    def _alias_alone(self) -> "ProtocolSpec":
        if self.alias_of is not None:
            extra = sorted(set(self.model_fields_set) - {"name", "description", "source", "alias_of", "source_file"})
            if extra:
                raise ValueError(f"an alias (alias_of) takes its settings from '{self.alias_of}'; remove {', '.join(extra)}")
        return self

    @model_validator(mode="after")
    def _interpolation_with_square(self) -> "ProtocolSpec":
        """An interpolation other than the model's is defined for squashed images only (Chinese-CLIP's transform)."""
        for where, own in [(None, ProtocolTask())] + sorted(self.tasks.items()):
            if (own.interpolation or self.interpolation or "model") != "model" and \
                    (own.preprocessing or self.preprocessing) != "square":
                field = "interpolation" if where is None else f"tasks.{where}.interpolation"
                raise ValueError(f"{field}: an interpolation other than 'model' applies to preprocessing = \"square\" "
                                 "only; set that preprocessing too, or remove the interpolation")
        return self

    def _set_only(self, own: ProtocolTask) -> dict:
        """The settings recorded only where the protocol (or its task) sets them."""
        chosen = {"interpolation": own.interpolation or self.interpolation,
                  "precision": own.precision or self.precision}
        return {name: value for name, value in chosen.items() if value is not None}

    def settings(self, task: str, language: str) -> dict:
        """The settings this protocol resolves to for `task` in `language` (recorded in every result). The metric
        variants added after tie_rule (multilabel_map, topk_beyond_classes, recall_argmax) appear where they
        differ from the default: absent means the default, as in results written before they existed."""
        own = self.tasks.get(task, ProtocolTask())
        return {
            "template_averaging": own.template_averaging or self.template_averaging,
            "preprocessing": own.preprocessing or self.preprocessing,
            **self._set_only(own),
            "prompts": own.prompts.get(language),
            "tie_rule": self.tie_rule,
            **{field: getattr(self, field) for field in ("multilabel_map", "topk_beyond_classes", "recall_argmax")
               if getattr(self, field) != ProtocolSpec.model_fields[field].default},
        }

    def changes(self) -> str:
        """What it changes from clipbench's defaults, in words (for `clipbench list protocols`)."""
        if self.alias_of:
            return f"the same as {self.alias_of} (an alias)"
        default = ProtocolSpec(name="x", description="")
        parts = [f"{field} {getattr(self, field)}" for field in ("template_averaging", "preprocessing", "tie_rule",
                                                                  "multilabel_map", "topk_beyond_classes", "recall_argmax")
                 if getattr(self, field) != getattr(default, field)]
        parts += [f"{field} {getattr(self, field)}" for field in ("interpolation", "precision")
                  if getattr(self, field)]
        for task, own in sorted(self.tasks.items()):
            fields = [f"{field} {value}" for field, value in own.model_dump(exclude_defaults=True).items() if field != "prompts"]
            fields += [f"{lang} prompts {name}" for lang, name in sorted(own.prompts.items())]
            parts.append(f"{task}: {', '.join(fields)}")
        return "; ".join(parts) or "nothing (the defaults)"

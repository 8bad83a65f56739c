"""Where a task's data can come from, in order of preference: typed sources, validated when a task file loads.

A task file's `[dataset]` is always the first place looked at (its folder under the data root, in its
publisher's layout). `[[sources]]` lists the others, each a table whose `kind` says what it is:

- `hub-webdataset`: a Hugging Face dataset repository in CLIP_benchmark's webdataset layout, read where
  huggingface_hub caches it. For a task with its own class names (`prompts`), the source declares the
  repository's class names in its label order and the task label of each (`mapping`: a JSON file next to the
  task file, written by `python -m benchmark.dev.mirror_mappings`); it declares the split's size (`images`, and
  `texts` for retrieval), which the reader checks against what it finds.
- `hub-archive`: a Hugging Face dataset repository holding archives to unpack into the task's folder
  (Flickr30k-CN's zip).
- `manual`: no public copy can be fetched; `how` says what a person does (an application, a licence to accept).

The models here are plain pydantic: they know nothing of the readers (benchmark.data) or of the hub client
(benchmark.download), which use them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ClipbenchError

REPOSITORY = r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$"
# what CLIP_benchmark's build_wds_dataset reads of the test split (its datasets/builder.py), and nothing else
WEBDATASET_FILES = ["test/*", "classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt"]


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubWebdataset(_Source):
    kind: Literal["hub-webdataset"]
    repository: str = Field(pattern=REPOSITORY)
    revision: Optional[str] = None  # branch, tag or commit; default: main
    split: str = "test"  # its split folder holding the task's split (ImageNet's val images are CLIP_benchmark's test)
    languages: Optional[list[str]] = None  # the task languages it serves; default: all (its prompts are the task's)
    images: Optional[int] = Field(default=None, gt=0)  # samples in the split: checked when read
    texts: Optional[int] = Field(default=None, gt=0)  # captions in the split (retrieval): checked when read
    mapping: Optional[str] = None  # JSON file (relative to the task file): its class names and their task labels
    files: list[str] = Field(default_factory=lambda: list(WEBDATASET_FILES))
    evidence: str = ""  # what was verified, against what (upstream repository, commit, path)

    def label(self) -> str:
        return f"{self.repository}" + (f"@{self.revision}" if self.revision else "")

    @model_validator(mode="after")
    def _files_of_its_split(self) -> "HubWebdataset":
        """Without `files`, what build_wds_dataset reads of its split (not always `test/`)."""
        if "files" not in self.model_fields_set and self.split != "test":
            object.__setattr__(self, "files", [f"{self.split}/*", *WEBDATASET_FILES[1:]])
        return self


class HubArchive(_Source):
    kind: Literal["hub-archive"]
    repository: str = Field(pattern=REPOSITORY)
    revision: Optional[str] = None
    files: list[str] = Field(min_length=1)  # the archives (allow_patterns), unpacked into the task's folder
    evidence: str = ""

    def label(self) -> str:
        return f"{self.repository}" + (f"@{self.revision}" if self.revision else "")


class Manual(_Source):
    kind: Literal["manual"]
    how: str = Field(min_length=1)  # what a person does to get the files
    why: str = Field(min_length=1)  # why no copy can be fetched (licence, application, no public mirror)
    url: str = ""

    def label(self) -> str:
        return f"manual: {self.url or self.how}"


Source = Annotated[Union[HubWebdataset, HubArchive, Manual], Field(discriminator="kind")]
HUB_KINDS = ("hub-webdataset", "hub-archive")


class Mapping(BaseModel):
    """A mirror's class names in its label order and, for each, the task's label: `labels[i]` is the task label of
    the mirror's class i. `aliases` lists the pairs whose names differ after `normalise`, each with its reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repository: str
    classnames: list[str] = Field(min_length=2)
    labels: list[int]
    task_classnames: str  # where the task's names were read (a prompt file)
    mirror_classnames: str  # where the mirror's names come from (upstream repository, commit, path)
    aliases: list[dict[str, str]] = Field(default_factory=list)  # {"mirror", "task", "reason"}


def normalise(name: str) -> str:
    """The comparison form of a class name: lower case, `_` and `-` as spaces, runs of spaces as one."""
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def mapping_path(task_file: str, source: HubWebdataset) -> Path:
    return Path(task_file).parent / source.mapping


def read_mapping(task_file: str, source: HubWebdataset, num_classes: Optional[int]) -> Mapping:
    """The source's mapping file, checked: parses, names the same repository, and is a bijection onto the task's
    labels 0..num_classes-1. One line naming the task file and the problem otherwise."""
    path = mapping_path(task_file, source)
    where = f"{task_file}: source {source.repository}: mapping {path}"
    try:
        mapping = Mapping.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise ClipbenchError(f"{where} cannot be read ({exc.strerror or exc}); regenerate it with "
                             "python -m benchmark.dev.mirror_mappings or fix 'mapping'") from None
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0] if not isinstance(exc, ValidationError) else \
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ClipbenchError(f"{where} is not a valid mapping ({first}); regenerate it") from None
    if mapping.repository != source.repository:
        raise ClipbenchError(f"{where} is for {mapping.repository}, not {source.repository}; fix 'mapping'")
    problem = bijection_problem(mapping.labels, len(mapping.classnames), num_classes)
    if problem:
        raise ClipbenchError(f"{where}: {problem}; a mirror is used only with a one-to-one mapping of its classes "
                             "onto the task's, so regenerate or fix it")
    return mapping


def bijection_problem(labels: list[int], mirror_classes: int, num_classes: Optional[int]) -> str:
    """Why `labels` (mirror class i -> task label) is not a bijection onto 0..num_classes-1; "" when it is."""
    if len(labels) != mirror_classes:
        return f"{len(labels)} labels for {mirror_classes} class names"
    if num_classes is not None and mirror_classes != num_classes:
        return f"{mirror_classes} mirror classes but the task has {num_classes}"
    wanted = set(range(mirror_classes))
    twice = sorted({x for x in labels if labels.count(x) > 1})
    outside = sorted(set(labels) - wanted)
    missing = sorted(wanted - set(labels))
    if twice or outside or missing:
        parts = [f"task label(s) {twice[:5]} given twice" if twice else "",
                 f"label(s) {outside[:5]} out of range" if outside else "",
                 f"task label(s) {missing[:5]} given to no mirror class" if missing else ""]
        return "not one-to-one: " + ", ".join(p for p in parts if p)
    return ""


def check_sources(sources: list, kind: str, has_prompts: bool, num_classes: Optional[int], task_file: str,
                  languages: list[str]) -> None:
    """What a task file's sources must satisfy beyond their fields: a mirror of a task with its own class names
    declares its mapping (and it must be a bijection), a retrieval mirror its text count, languages the task has."""
    for index, source in enumerate(sources):
        where = f"{task_file}: field 'sources.{index}'"
        if not isinstance(source, HubWebdataset):
            continue
        if source.languages is not None:
            unknown = [lang for lang in source.languages if lang not in languages]
            if unknown:
                raise ClipbenchError(f"{where}.languages: {unknown} not among the task's languages {languages}")
        if kind == "classification" and has_prompts:
            if source.mapping is None:
                raise ClipbenchError(f"{where}: a webdataset mirror of a task with its own class names needs 'mapping' "
                                     "(its class names and their task labels; python -m benchmark.dev.mirror_mappings)")
            if task_file:
                read_mapping(task_file, source, num_classes)
        elif source.mapping is not None:
            raise ClipbenchError(f"{where}.mapping: only a classification task with its own prompts maps labels; remove it")


def legacy_sources(dataset: dict) -> tuple[dict, list[dict]]:
    """A `[dataset]` written before typed sources (`hub`, `revision`, `hub_files`, `hub_cache`): the dataset without
    those keys, and the source they described (read in the hub cache: a webdataset; else archives to unpack)."""
    keys = ("hub", "revision", "hub_files", "hub_cache")
    if not dataset.get("hub"):
        return dataset, []
    rest = {k: v for k, v in dataset.items() if k not in keys}
    if dataset.get("hub_cache"):
        source = {"kind": "hub-webdataset", "repository": dataset["hub"], "revision": dataset.get("revision"),
                  "files": dataset.get("hub_files") or list(WEBDATASET_FILES)}
    else:
        source = {"kind": "hub-archive", "repository": dataset["hub"], "revision": dataset.get("revision"),
                  "files": dataset.get("hub_files") or ["*"]}
    return rest, [source]

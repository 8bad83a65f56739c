"""The result record: one JSON file per measurement, a typed model (`Result`, in the manner of MTEB's
`TaskResult`), schema-versioned, written atomically, validated and migrated when read.

`clipbench run` builds a `Result` and writes it; table, plot, compare and baseline save read files back as
`Result`s. Older schema versions become the current shape in one place (`_upgrade`), nowhere else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from . import interop
from .errors import ClipbenchError
from .outputs import write_json_atomic

SCHEMA_VERSION = 1
BASELINE_KIND = "clipbench-baseline"


# ---------------------------------------------------------------------------------------------- the record

class Key(NamedTuple):
    """What results are grouped by, everywhere: the checkpoints (or seeds) of one model group on one task in
    one language are one table cell, one bar, one baseline entry."""

    group: str
    task: str
    language: str


class Part(BaseModel):
    """A part of the record. Keys it does not declare are kept and written back, not refused: the model's
    provenance has backend-specific keys (`pretrained` for open_clip, `class` for transformers), a newer
    clipbench may add fields without a new schema_version (only a change an older reader would misread bumps
    it), and a hand-made file may carry a note. What a reader uses is declared and typed; what decides which
    results are averaged together is required or cross-checked (dataset fingerprint, prompts, --limit)."""

    model_config = ConfigDict(extra="allow")


class ModelInfo(Part):
    name: str
    group: Optional[str] = None
    checkpoint_name: Optional[str] = None
    step: Optional[int] = None  # the training step of a model evaluated in memory (benchmark.api); absent otherwise
    # then the encoder's provenance as it gives it (backend, id, revision, checkpoint and its sha256, parameters)


class DatasetInfo(Part):
    format: Optional[str] = None
    location: Optional[str] = None
    fingerprint: Optional[str] = None  # required of clipbench's results (check_result); imported ones have none
    n_images: Optional[int] = None
    n_texts: Optional[int] = None
    n_classes: Optional[int] = None
    task_file: Optional[str] = None
    # the task source read when it was not the task's own folder ([dataset]): kind (hub-webdataset, hub-archive),
    # repository and revision (the commit read, for a mirror), and the mapping file of its labels; absent otherwise
    source: Optional[dict[str, Any]] = None
    details: Optional[dict[str, Any]] = None  # facts of one kind (pair scoring: text field, threshold); absent if none


class PromptsInfo(Part):
    origin: Optional[str] = None
    sha256: str
    n_templates: Optional[int] = None


class ProtocolInfo(Part):
    """The protocol a result was evaluated under (protocols/<name>.toml) and what it resolved to for this task
    and language: template_averaging, preprocessing, prompts (a protocol's prompt file, or null), tie_rule."""

    name: str
    settings: dict[str, Any]


# Results written before protocols existed were evaluated with clipbench's defaults.
DEFAULT_PROTOCOL = "clipbench"


class Bootstrap(Part):
    n: Optional[int] = None  # draws
    seed: Optional[int] = None
    stderr: dict[str, Optional[float]] = {}
    ci95: dict[str, Optional[tuple[float, float]]] = {}


class Limit(Part):
    n: int
    seed: Optional[int] = None


class RunInfo(Part):
    clipbench_version: Optional[str] = None
    git_commit: Optional[str] = None
    device: Optional[str] = None
    precision: Optional[str] = None
    batch_size: Optional[int] = None
    num_workers: Optional[int] = None
    versions: Optional[dict[str, Optional[str]]] = None
    started_at: Optional[str] = None
    wall_seconds: Optional[float] = None
    image_seconds: Optional[float] = None
    images_per_second: Optional[float] = None  # None when the image embeddings were reused
    image_embeddings_reused: Optional[bool] = None  # made earlier in the same run (another task or language)
    # The disk cache (benchmark.cache); results written before it lack these fields. None: the cache was off
    # (--no-cache, not writable, or the weights or preprocessing could not be keyed).
    image_embeddings_from_disk: Optional[bool] = None  # read whole from the disk cache
    text_embeddings_from_disk: Optional[bool] = None  # the classifier or the captions, read whole from it
    images_embedded: Optional[int] = None  # images this job embedded itself (fewer than all when a run resumed)
    predictions: Optional[str] = None  # --save-predictions: the file name of the prediction lines, beside this one
    queries: Optional[str] = None  # --save-queries: the file name of the per-query outcomes, beside this one


class Imported(Part):
    """Where an imported result was read from (benchmark.interop): a CLIP_benchmark JSON. Its own names are
    kept, so that `clipbench export` writes back what it read; `metrics` maps each of ours to its key."""

    source: str
    file: Optional[str] = None
    dataset: Optional[str] = None
    task: Optional[str] = None
    model: Optional[str] = None
    pretrained: Optional[str] = None
    language: Optional[str] = None  # as written; None in files from before CLIP_benchmark's --language (read as en)
    metrics: dict[str, str] = {}
    derived: list[str] = []  # mean recalls computed here from its recalls
    left_out: list[str] = []  # its metrics clipbench has no name for (recall@K for other K)


class Result(Part):
    """One measurement. The fields are written in this order; a field is written only when it was set, so
    that a record writes back what it was built or read with (`dataset.details` only for kinds that have it).
    Provenance that hand-made files may lack (`split`, `run`, most of `dataset`) is optional when read."""

    schema_version: int
    task: str
    kind: str
    language: str
    split: Optional[str] = None
    variant: Optional[str] = None  # pair scoring: the text field
    main_score: str
    metrics: dict[str, Optional[float]]
    seed: Optional[int] = None
    bootstrap: Optional[Bootstrap] = None
    limit: Optional[Limit] = None
    model: ModelInfo
    dataset: DatasetInfo
    prompts: Optional[PromptsInfo]  # required; null for tasks without prompts
    protocol: Optional[ProtocolInfo] = None  # absent in results written before protocols: DEFAULT_PROTOCOL
    run: Optional[RunInfo] = None
    imported: Optional[Imported] = None  # read from another harness's file: no fingerprint, prompts or protocol

    @property
    def group(self) -> str:
        return self.model.group or self.model.name

    @property
    def key(self) -> Key:
        return Key(self.group, self.task, self.language)

    @property
    def protocol_name(self) -> str:
        if self.imported is not None:  # the file does not say: never DEFAULT_PROTOCOL, never equal to a run's
            return interop.PROTOCOL
        return self.protocol.name if self.protocol else DEFAULT_PROTOCOL

    @property
    def member(self) -> tuple[str, Optional[int]]:
        """Which member of its group this is: the checkpoint (or the model) and the seed."""
        return (self.model.checkpoint_name or self.model.name, self.seed)

    @property
    def identity(self) -> tuple:
        """What the measurement is of: two results with the same identity are the same measurement, repeated."""
        return (self.group, self.model.checkpoint_name, self.task, self.variant, self.language,
                self.limit.n if self.limit else None, self.seed)

    def interval(self, metric: str) -> Optional[tuple[float, float]]:
        """The bootstrap 95% interval of `metric`, when the run drew one."""
        return self.bootstrap.ci95.get(metric) if self.bootstrap else None

    def payload(self) -> dict:
        # python mode, not json: a NaN metric (Spearman of constant scores) stays NaN as before, not null
        return self.model_dump(exclude_unset=True)

    def write(self, path: Path) -> Path:
        return write_atomic(path, self.payload())

    @classmethod
    def from_disk(cls, path: Path, note=None) -> "Result":
        """A result file given by name: it must be one (clipbench's, or CLIP_benchmark's: benchmark.interop)."""
        payload = load_json(path)
        why = not_a_result(payload)
        if why:
            raise ClipbenchError(f"{path}: {why}")
        return check_result(path, payload, note)


def describe_identity(ident: tuple) -> str:
    group, checkpoint, task, variant, language, limit, seed = ident
    parts = [f"group '{group}'", f"checkpoint '{checkpoint}'" if checkpoint else None, f"task '{task}' [{language}]",
             f"text field {variant}" if variant else None, f"--limit {limit}" if limit is not None else None,
             f"seed {seed}" if seed is not None else None]
    return ", ".join(p for p in parts if p)


def write_atomic(path: Path, payload: dict) -> Path:
    return write_json_atomic(path, payload, "--output")


class BaselineEntry(Part):
    """One entry of a baseline file (`clipbench baseline save`): a group's main score on a task, and what it
    was evaluated on. Baselines saved before issue 8 lack `limit`, `fingerprint` and `prompts_sha256`: an
    aspect is compared only when the entry records it (`model_fields_set`)."""

    group: str
    task: str
    language: str
    main_score: str
    value: float
    n_checkpoints: int = 1
    ci95: Optional[tuple[float, float]] = None
    limit: Optional[tuple[int, Optional[int]]] = None  # (n, seed) of a --limit subset
    fingerprint: Optional[str] = None
    prompts_sha256: Optional[str] = None
    protocol: Optional[str] = None
    imported: Optional[str] = None  # the source (CLIP_benchmark) of an entry saved from imported results

    @property
    def key(self) -> Key:
        return Key(self.group, self.task, self.language)


# ---------------------------------------------------------------------------------------------- reading

def _fields(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(file)"
        what = {"missing": "missing", "model_type": "must be an object", "dict_type": "must be an object"}.get(
            item["type"], item["msg"])
        parts.append(f"field '{where}': {what}")
    return "; ".join(parts)


def validated(model: type[BaseModel], payload: dict, where: str, fix: str):
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ClipbenchError(f"{where}: {_fields(exc)}; {fix}") from None


def load_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClipbenchError(f"{path}: not readable as JSON ({exc}); regenerate or remove it") from None


def not_a_result(payload) -> str | None:
    """Why a JSON document is not a result file at all, or None when it claims to be one: clipbench's, or a
    CLIP_benchmark result JSON (read through benchmark.interop)."""
    if interop.is_clip_benchmark(payload):
        return None
    if isinstance(payload, dict) and payload.get("kind") == BASELINE_KIND:
        return "a baseline file ('clipbench baseline save'), not a result file; pass it as --baseline"
    if not isinstance(payload, dict) or "schema_version" not in payload:
        return "no schema_version; not a clipbench result file"
    return None


# Older shapes of the record become the current one here and nowhere else: MIGRATIONS[v] turns a version-v
# payload into version v + 1. A change an older reader would misread (a field renamed, or its meaning changed)
# bumps SCHEMA_VERSION and adds its step. Every file clipbench has written is version 1: no step yet.
FIRST_VERSION = 1
MIGRATIONS: dict[int, Callable[[dict], dict]] = {}
REGENERATE = "regenerate it with 'clipbench run'"


def _upgrade(path: Path, payload: dict) -> dict:
    version = payload["schema_version"]
    if type(version) is not int:  # noqa: E721 - a bool is an int to isinstance
        raise ClipbenchError(f"{path}: field 'schema_version': not an integer; {REGENERATE}")
    if version > SCHEMA_VERSION:
        raise ClipbenchError(f"{path}: schema_version {version} is newer than this clipbench understands ({SCHEMA_VERSION}); upgrade clipbench")
    if version < FIRST_VERSION:
        raise ClipbenchError(f"{path}: schema_version {version} was never written by clipbench (it writes "
                             f"{FIRST_VERSION} to {SCHEMA_VERSION}); {REGENERATE}")
    for step in range(version, SCHEMA_VERSION):
        payload = {**MIGRATIONS[step](payload), "schema_version": step + 1}
    return payload


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def check_result(path: Path, payload: dict, note=None) -> Result:
    """The `Result` of a payload that `not_a_result` accepted; a CLIP_benchmark JSON is imported first (`note`
    takes the lines saying what was left out of it)."""
    if interop.is_clip_benchmark(payload):
        imported = {"schema_version": SCHEMA_VERSION, **interop.imported_payload(path, payload, note or _note)}
        result = validated(Result, imported, str(path), "fix the file or move it out of the results")
    else:
        result = validated(Result, _upgrade(path, payload), str(path), REGENERATE)
        if result.imported is None and result.dataset.fingerprint is None:
            raise ClipbenchError(f"{path}: field 'dataset.fingerprint': missing; {REGENERATE}")
    if result.metrics.get(result.main_score) is None:
        raise ClipbenchError(f"{path}: field 'metrics.{result.main_score}': missing (the main score); {REGENERATE}")
    return result


def read_all(paths: list[Path], note=_note) -> list[Result]:
    """Result files, and the result files found in folders (recursively); CLIP_benchmark result JSONs are
    imported (benchmark.interop). In a folder, JSON files that are not result files at all (a baseline saved
    there, a config) are skipped with a note; a file given by name must
    be a result file, and a result file with missing fields is an error either way."""
    return [result for _, result in read_located(paths, note)]


def read_located(paths: list[Path], note=_note) -> list[tuple[Path, Result]]:
    """`read_all`, keeping where each result was read from (a file beside it, such as its queries, is found so)."""
    found: list[tuple[Path, Result]] = []
    for path in map(Path, paths):
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*.json") if p.is_file()):
                payload = load_json(file)
                why = not_a_result(payload)
                if why:
                    note(f"note: skipped {file}: {why}")
                    continue
                found.append((file, check_result(file, payload, note)))
        elif path.is_file():
            found.append((path, Result.from_disk(path, note)))
        else:
            raise ClipbenchError(f"{path} does not exist; pass result files or folders")
    return found

"""The result file: one JSON per measurement, schema-versioned, written atomically, validated when read."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import ClipbenchError
from .outputs import write_json_atomic
from .result_names import result_name, slug  # noqa: F401 - slug is imported from here by plot

SCHEMA_VERSION = 1
BASELINE_KIND = "clipbench-baseline"


def result_path(output: Path, result: dict) -> Path:
    model, dataset = result["model"], result.get("dataset") or {}
    return Path(output) / result_name(
        model.get("group") or model["name"], model.get("checkpoint_name"), result["task"], dataset.get("task_file"),
        result.get("variant"), result["language"], (result.get("limit") or {}).get("n"), result.get("seed"))


def identity(result: dict) -> tuple:
    """What one measurement is of: two results with the same identity are the same measurement, repeated."""
    model = result["model"]
    return (model.get("group") or model["name"], model.get("checkpoint_name"), result["task"], result.get("variant"),
            result["language"], (result.get("limit") or {}).get("n"), result.get("seed"))


def describe_identity(ident: tuple) -> str:
    group, checkpoint, task, variant, language, limit, seed = ident
    parts = [f"group '{group}'", f"checkpoint '{checkpoint}'" if checkpoint else None, f"task '{task}' [{language}]",
             f"text field {variant}" if variant else None, f"--limit {limit}" if limit is not None else None,
             f"seed {seed}" if seed is not None else None]
    return ", ".join(p for p in parts if p)


def write_atomic(path: Path, payload: dict) -> Path:
    return write_json_atomic(path, payload, "--output")


# ---------------------------------------------------------------------------------------------- reading

class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")  # readers ignore fields they do not use


class _Model(_Part):
    name: str
    group: Optional[str] = None
    checkpoint_name: Optional[str] = None


class _Dataset(_Part):
    fingerprint: str


class _Prompts(_Part):
    sha256: str


class _Bootstrap(_Part):
    ci95: dict[str, Optional[tuple[float, float]]] = {}


class _Limit(_Part):
    n: int
    seed: Optional[int] = None


class ResultFile(_Part):
    """The fields of a result file that the readers (table, plot, compare, baseline save) use."""

    schema_version: int
    task: str
    kind: str
    language: str
    main_score: str
    metrics: dict[str, Optional[float]]
    seed: Optional[int] = None
    variant: Optional[str] = None
    limit: Optional[_Limit] = None
    bootstrap: Optional[_Bootstrap] = None
    model: _Model
    dataset: _Dataset
    prompts: Optional[_Prompts]  # required; null for tasks without prompts


class BaselineEntry(_Part):
    group: str
    task: str
    language: str
    main_score: str
    value: float
    n_checkpoints: int = 1
    ci95: Optional[tuple[float, float]] = None


def _fields(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(file)"
        what = {"missing": "missing", "model_type": "must be an object", "dict_type": "must be an object"}.get(
            item["type"], item["msg"])
        parts.append(f"field '{where}': {what}")
    return "; ".join(parts)


def validated(model: type[BaseModel], payload: dict, where: str, fix: str) -> dict:
    try:
        return model.model_validate(payload).model_dump()
    except ValidationError as exc:
        raise ClipbenchError(f"{where}: {_fields(exc)}; {fix}") from None


def load_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClipbenchError(f"{path}: not readable as JSON ({exc}); regenerate or remove it") from None


def not_a_result(payload) -> str | None:
    """Why a JSON document is not a clipbench result file at all, or None when it claims to be one."""
    if isinstance(payload, dict) and payload.get("kind") == BASELINE_KIND:
        return "a baseline file ('clipbench baseline save'), not a result file; pass it as --baseline"
    if not isinstance(payload, dict) or "schema_version" not in payload:
        return "no schema_version; not a clipbench result file"
    return None


def check_result(path: Path, payload: dict) -> dict:
    version = payload["schema_version"]
    if not isinstance(version, int):
        raise ClipbenchError(f"{path}: field 'schema_version': not an integer; regenerate it with 'clipbench run'")
    if version > SCHEMA_VERSION:
        raise ClipbenchError(f"{path}: schema_version {version} is newer than this clipbench understands ({SCHEMA_VERSION}); upgrade clipbench")
    fix = "regenerate it with 'clipbench run'"
    result = validated(ResultFile, payload, str(path), fix)
    if result["metrics"].get(result["main_score"]) is None:
        raise ClipbenchError(f"{path}: field 'metrics.{result['main_score']}': missing (the main score); {fix}")
    return result


def read(path: Path) -> dict:
    payload = load_json(path)
    why = not_a_result(payload)
    if why:
        raise ClipbenchError(f"{path}: {why}")
    return check_result(path, payload)


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def read_all(paths: list[Path], note=_note) -> list[dict]:
    """Result files, and the result files found in folders (recursively). In a folder, JSON files that are not
    result files at all (a baseline saved there, a config) are skipped with a note; a file given by name must
    be a result file, and a result file with missing fields is an error either way."""
    results: list[dict] = []
    for path in map(Path, paths):
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*.json") if p.is_file()):
                payload = load_json(file)
                why = not_a_result(payload)
                if why:
                    note(f"note: skipped {file}: {why}")
                    continue
                results.append(check_result(file, payload))
        elif path.is_file():
            results.append(read(path))
        else:
            raise ClipbenchError(f"{path} does not exist; pass result files or folders")
    return results

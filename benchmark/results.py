"""The result file: one JSON per (model, task, language), schema-versioned, written atomically."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

from .errors import ClipbenchError

SCHEMA_VERSION = 1


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def result_path(output: Path, result: dict) -> Path:
    """<output>/<group>/[<checkpoint>/]<task>[.<variant>].<language>[.seed<S>].json"""
    model = result["model"]
    folder = output / slug(model.get("group") or model["name"])
    if model.get("checkpoint_name"):
        folder = folder / slug(model["checkpoint_name"])
    seed = f".seed{result['seed']}" if result.get("seed") is not None else ""
    variant = f".{slug(result['variant'])}" if result.get("variant") else ""
    return folder / f"{slug(result['task'])}{variant}.{result['language']}{seed}.json"


def write_atomic(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2, ensure_ascii=False, sort_keys=False)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read(path: Path) -> dict:
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ClipbenchError(f"{path}: not a readable result file ({exc})") from None
    version = payload.get("schema_version") if isinstance(payload, dict) else None
    if not isinstance(version, int):
        raise ClipbenchError(f"{path}: no schema_version; not a clipbench result file")
    if version > SCHEMA_VERSION:
        raise ClipbenchError(f"{path}: schema_version {version} is newer than this clipbench understands ({SCHEMA_VERSION}); upgrade clipbench")
    return payload


def read_all(paths: list[Path]) -> list[dict]:
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(path.rglob("*.json")))
        elif path.is_file():
            files.append(path)
        else:
            raise ClipbenchError(f"{path} does not exist; pass result files or folders")
    return [read(f) for f in files]

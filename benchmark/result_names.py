"""Where a result is written: the file name holds everything that makes one measurement differ from another."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _name_part(text: str) -> str:
    """A file-name-safe form of `text`. Names that are not plain ASCII would lose letters (two Chinese names can
    both become `model`), so they carry a short hash of the full name."""
    kept = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    return kept if text.isascii() and kept else f"{kept or 'model'}.{_short_hash(text)}"


def result_name(group: str, checkpoint: str | None, task: str, location: str | None, variant: str | None,
                language: str, limit: int | None, seed: int | None, protocol: str | None = None) -> Path:
    """<group>/[<checkpoint>/]<task>[.<where>][.<variant>].<language>[.limit<N>][.seed<S>][.protocol-<name>].json

    Everything that makes a measurement different is in the name, so that no result replaces another: a task
    that is not a registered task file (a dataset folder, a task file given by path) adds a short hash of its
    resolved location (`<where>`, from `location`; None for a registered task, which its name identifies), as two
    folders can share a base name; a `--limit` subset adds its size; a protocol other than clipbench's default
    (`protocol`; None for the default) adds `protocol-<name>` as the last part, so that one folder holds the same
    measurement under several papers' protocols. The name is the one results record: an alias's target
    (`--protocol altclip` writes `protocol-clip-benchmark`), so that a rerun replaces its own file. The default
    protocol's names are what they were before protocols existed. E.g. shapes.en.seed0.json (clipbench) and
    shapes.en.seed0.protocol-capivara.json."""
    folder = Path(_name_part(group))
    if checkpoint:
        folder = folder / _name_part(checkpoint)
    where = "" if location is None else f".{_short_hash(str(Path(location).resolve()))}"
    parts = [f"{slug(task)}{where}"]
    if variant:
        parts.append(slug(variant))
    parts.append(language)
    if limit is not None:
        parts.append(f"limit{limit}")
    if seed is not None:
        parts.append(f"seed{seed}")
    if protocol is not None:
        parts.append(f"protocol-{_name_part(protocol)}")
    return folder / (".".join(parts) + ".json")

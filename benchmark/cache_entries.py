"""`clipbench cache list|clear`: what the embedding cache on disk holds (benchmark.cache), and removing it."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import SUBDIR, Corrupt, read_meta
from .errors import ClipbenchError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class Entry:
    digest: str
    paths: list[Path]  # the entry file and/or its chunk folder (and temporary files of unfinished writes)
    size: int
    last_used: float  # mtime, seconds since the epoch
    kind: str
    rows: str
    state: str  # whole, partial (n chunks), unreadable (reason)
    label: str
    key: str


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _mtime(path: Path) -> float:
    if path.is_dir():
        return max([p.stat().st_mtime for p in path.rglob("*") if p.is_file()] or [path.stat().st_mtime])
    return path.stat().st_mtime


def entries(root: Path) -> list[Entry]:
    """Every entry under `root`, whole or partial (chunks only), oldest use first; a leftover temporary file of
    a write that was cut short counts as its own entry ("unfinished write")."""
    folder = Path(root).expanduser() / SUBDIR
    if not folder.is_dir():
        return []
    grouped: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        digest = path.name.lstrip(".").split(".")[0]
        grouped.setdefault(digest, []).append(path)
    found = []
    for digest, paths in grouped.items():
        try:
            found.append(_entry(digest, sorted(paths)))
        except FileNotFoundError:  # removed by another process while we looked
            continue
    return sorted(found, key=lambda e: e.last_used)


def _entry(digest: str, paths: list[Path]) -> Entry:
    whole = next((p for p in paths if p.name == f"{digest}.safetensors"), None)
    chunks = next((p for p in paths if p.name == f"{digest}.chunks" and p.is_dir()), None)
    size, used = sum(_size(p) for p in paths), max(_mtime(p) for p in paths)
    probe = whole or (min(chunks.glob("*.safetensors"), default=None) if chunks else None)
    meta, state = {}, "unfinished write"
    if probe is not None:
        try:
            meta = read_meta(probe)
            state = "whole" if whole else f"partial ({len(list(chunks.glob('*.safetensors')))} chunks)"
        except Corrupt as reason:
            state = f"unreadable ({reason})"
    rows = f"{meta['rows']} x {meta['dim']}" if whole and "rows" in meta else "-"
    return Entry(digest, paths, size, used, meta.get("kind", "?"), rows, state, meta.get("label", ""), meta.get("key", ""))


def parse_age(text: str) -> float:
    """`7d`, `12h`, `30m`, `2w`, `90s` -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match:
        raise ClipbenchError(f"--older-than '{text}' is not an age; write a number and a unit: 90s, 30m, 12h, 7d or 2w",
                             exit_code=2)
    return float(match.group(1)) * UNITS[match.group(2)]


def human_size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def human_age(seconds: float) -> str:
    for unit, span in (("w", UNITS["w"]), ("d", UNITS["d"]), ("h", UNITS["h"]), ("m", UNITS["m"])):
        if seconds >= span:
            return f"{seconds / span:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def render(root: Path, verbose: bool = False) -> str:
    from tabulate import tabulate

    found, now = entries(root), time.time()
    if not found:
        return f"the embedding cache {root} is empty"
    rows = []
    for entry in found:
        row = {"entry": entry.digest[:16], "kind": entry.kind, "state": entry.state, "rows x dim": entry.rows,
               "size": human_size(entry.size), "last used": human_age(now - entry.last_used), "of": entry.label}
        if verbose:
            row["key"] = json.dumps(json.loads(entry.key), sort_keys=True) if entry.key else ""
        rows.append(row)
    total = human_size(sum(e.size for e in found))
    table = tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True)
    return f"{table}\n{len(found)} entries, {total}, in {root}"


def clear(root: Path, older_than: str | None = None) -> tuple[int, int]:
    """Remove every entry (or those not used for `older_than`); (entries removed, bytes freed)."""
    limit = parse_age(older_than) if older_than is not None else None
    removed = freed = 0
    now = time.time()
    for entry in entries(root):
        if limit is not None and now - entry.last_used < limit:
            continue
        for path in entry.paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        removed, freed = removed + 1, freed + entry.size
    return removed, freed

"""Image files read lazily from disk, and the shared checks and messages of the file-based retrieval formats.

`FileImages.fingerprint` is a sha256 over each image's path relative to the dataset root and its size in
bytes, in order: cheap (no pixels are read), stable when the dataset folder moves, and independent of the
caption language, so the runs of one dataset in several languages reuse the image embeddings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..errors import ClipbenchError
from ..specs import TaskSpec
from ..text import read_text


@dataclass
class FileImages:
    """A fixed, ordered list of image files; `open(i)` decodes one."""

    paths: list[str]
    location: str
    fingerprint: str

    def __len__(self) -> int:
        return len(self.paths)

    def open(self, index: int) -> Image.Image:
        image = Image.open(self.paths[index])
        image.load()
        return image

    def describe(self, index: int) -> str:
        return self.paths[index]


def fingerprint(rows: list[tuple[str, int]]) -> str:
    """sha256 over (relative name, size in bytes) of every image, in order."""
    digest = hashlib.sha256()
    for name, size in rows:
        digest.update(f"{name}|{size}\n".encode("utf-8"))
    return digest.hexdigest()


def jsonl_records(spec: TaskSpec, path: Path, parse, expected: str, fix: str) -> list:
    """`parse(record)` for every non-blank line of a JSONL file. A line that is not JSON, or that `parse` rejects
    (ValueError, KeyError, TypeError, AttributeError), stops with one line naming the file, the line number,
    what each line must be (`expected`) and the `fix`."""
    out = []
    # split on newlines only: str.splitlines would also break at U+2028 and the like, which JSON strings may hold
    for number, line in enumerate(read_text(path, f"task '{spec.name}': {path}").split("\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(parse(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ClipbenchError(f"task '{spec.name}': {path} line {number} is not {expected}; {fix}") from None
    return out


def layout_error(spec: TaskSpec, root: Path, missing: str, expected: list[str], download: str) -> ClipbenchError:
    """One line: what is missing, every file and folder the task expects under the root, and where to get them."""
    where = f"; get them from {download}" if download else ""
    return ClipbenchError(
        f"task '{spec.name}': {missing} not found; expected under {root}: {', '.join(expected)}{where} "
        f"(put them there, pass --data-root, or set [dataset].path in {spec.source_file or 'the task file'})"
    )


def file_images(spec: TaskSpec, root: Path, relative: list[str], location: str, listed_in: str) -> FileImages:
    """FileImages for paths relative to `root`; every file must exist (one error names the first missing one
    and how many are missing)."""
    rows, missing = [], []
    for name in relative:
        full = os.path.join(root, name)
        try:
            rows.append((name, os.stat(full).st_size))
        except OSError:
            missing.append(full)
    if missing:
        raise ClipbenchError(
            f"task '{spec.name}': {len(missing)} of {len(relative)} images listed in {listed_in} are missing, "
            f"the first is {missing[0]}; download the complete image set (or fix the dataset path)"
        )
    return FileImages([os.path.join(root, name) for name in relative], location, fingerprint(rows))

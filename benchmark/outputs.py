"""Writing what the commands produce: check a path before the work, then write it atomically.

The checks run before any compute, so that a read-only folder or a file in the way fails in seconds, not after
the model has embedded everything. A write that still fails (a full disk) names the path and the fix, leaves
no temp file behind and keeps whatever was at the path before.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, IO

from .errors import ClipbenchError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(path.anchor or ".")


def _cannot_write_in(folder: Path) -> OSError | None:
    """Try it: permissions, ACLs, read-only mounts and immutable folders all show in a real create."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc
    return None


def check_folder(folder: Path, option: str) -> None:
    """`folder` exists and takes new files, or can be created (with the folders above it that are missing)."""
    folder = Path(folder)
    found = _nearest_existing(folder)
    if not found.is_dir():
        raise ClipbenchError(f"{option} {folder}: {found} is a file, not a folder; move it away or choose another {option}")
    problem = _cannot_write_in(found)
    if problem is not None:
        raise ClipbenchError(f"{option} {folder}: cannot write in {found} ({problem.strerror or problem}); "
                             f"make it writable or choose another {option}")


def check_file(path: Path, option: str, append: bool = False) -> None:
    """`path` can be (re)written: it is not a folder and its folder takes new files; with `append`, an
    existing file can be opened for appending."""
    path = Path(path)
    if path.is_dir():
        raise ClipbenchError(f"{option} {path} is a folder; remove it or choose another {option}")
    check_folder(path.parent, option)
    if append and path.exists():
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise ClipbenchError(f"{option} {path}: cannot append to it ({exc.strerror or exc}); "
                                 f"make it writable or choose another {option}") from None


def _umask() -> int:
    # os.umask is the only portable way to read it; set it back at once (clipbench writes from one thread)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_failed(path: Path, exc: OSError, option: str) -> ClipbenchError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):  # a full disk, quota or file-size limit
        fix = f"free some space there or choose another {option}"
    elif exc.errno == errno.EISDIR or Path(path).is_dir():
        fix = f"{path} is a folder: remove it or choose another {option}"
    else:
        fix = f"make {Path(path).parent} writable or choose another {option}"
    return ClipbenchError(f"cannot write {path} ({exc.strerror or exc}); nothing was changed there; {fix}")


def write_atomic_with(path: Path, write: Callable[[IO[bytes]], None], option: str = "--output") -> Path:
    """Write through `write(handle)` into a temp file beside `path`, then rename it over `path`: readers see
    the old file or the new one, never a part. Mode follows the umask, as a plain open() would."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes 0600
        with os.fdopen(handle, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise write_failed(path, exc, option) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path: Path, text: str, option: str = "--output") -> Path:
    data = text.encode("utf-8")
    return write_atomic_with(path, lambda out: out.write(data), option)


def write_json_atomic(path: Path, payload: dict, option: str = "--output") -> Path:
    # serialised before the temp file exists: a value json cannot write fails without touching the disk
    return write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n", option)

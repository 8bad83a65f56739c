"""The embedding cache on disk: image embeddings of a dataset, and text embeddings (the zero-shot classifier, the
captions), kept between runs in safetensors files under $CLIPBENCH_CACHE (default ~/.cache/clipbench).

An entry is keyed by everything that changes its numbers (benchmark.cache_keys, which also has the measurement
that puts the batch size in the key). Chunks are aligned to the batch size (EmbeddingCache rounds the chunk size
up to a multiple of it): a chunked run makes exactly the batches of an unchunked one, so its rows are
bit-identical to it.

Layout, under <root>/embeddings-v1/:
    <digest>.safetensors                             a whole entry: the only thing that counts as a hit
    <digest>.chunks/<start>-<stop>.safetensors       finished blocks of an entry still being filled (resume)
Every file holds one float32 tensor `embeddings` (rows, dim) and str metadata: format, kind, key (the key as
canonical JSON, compared on read), rows, dim, sha256 of the tensor's bytes, label (what `cache list` shows),
and for chunks start and stop.

Atomicity and sharing: a file is written under a temporary name in its folder, fsynced, then renamed into place,
so a reader sees a whole file or none; two runs filling one entry both compute and both rename (the last wins;
the contents are the same), and a run picks up the chunks another has finished. No locks. A file that does not
read back whole (truncated, flipped bytes, another key) is reported in one line, removed and recomputed, never used.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .cache_keys import FORMAT, canonical, digest_of

if TYPE_CHECKING:
    import torch

SUBDIR = "embeddings-v1"
DEFAULT_ROOT = Path("~/.cache/clipbench")
DEFAULT_CHUNK = 2048  # images per resumable chunk
TENSOR = "embeddings"


def default_root() -> Path:
    return Path(os.environ.get("CLIPBENCH_CACHE") or DEFAULT_ROOT).expanduser()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


# ---------------------------------------------------------------------------------------------- files

class Corrupt(Exception):
    """A cache file that does not read back whole; the message says why."""


def _sha256(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.contiguous().numpy().data).hexdigest()


def write_file(path: Path, tensor: torch.Tensor, meta: dict) -> None:
    """Write under a temporary name beside `path`, fsync, rename into place. Raises OSError."""
    import torch
    from safetensors.torch import save_file

    tensor = tensor.detach().to("cpu", torch.float32).contiguous()
    meta = {**meta, "format": FORMAT, "rows": str(tensor.shape[0]), "dim": str(tensor.shape[1]),
            "sha256": _sha256(tensor)}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.close(handle)
        try:
            save_file({TENSOR: tensor}, tmp, metadata=meta)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - safetensors reports a failed write (full disk, size limit) as its own error
            raise OSError(errno.EIO, _first_line(exc)) from None
        with open(tmp, "rb") as written:
            os.fchmod(written.fileno(), 0o666 & ~_umask())  # mkstemp and safetensors make 0600; a shared cache needs more
            os.fsync(written.fileno())
        os.replace(tmp, path)
        tmp = None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set it back at once
    os.umask(mask)
    return mask


def read_meta(path: Path) -> dict:
    """The metadata of a cache file (its header only). Raises Corrupt."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:  # the header only: no torch needed
            return dict(handle.metadata() or {})
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error, an OSError or a ValueError
        raise Corrupt(_first_line(exc)) from None


def read_file(path: Path, key_json: str, rows: int | None = None, **expected: str) -> torch.Tensor:
    """The tensor of a cache file, after checking that it is whole and is what `key_json` asks for (and has
    `rows` rows, and the metadata `expected`). Raises Corrupt; FileNotFoundError when there is none."""
    import torch
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:  # checks that the header covers the whole file
            meta, names = dict(handle.metadata() or {}), list(handle.keys())
            tensor = handle.get_tensor(TENSOR) if names == [TENSOR] else None
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or garbled: safetensors says how
        raise Corrupt(f"not a whole safetensors file: {_first_line(exc)}") from None
    if meta.get("format") != FORMAT or tensor is None:
        raise Corrupt("not a clipbench embeddings file")
    if meta.get("key") != key_json:
        raise Corrupt("its header holds another key")
    if tensor.dtype != torch.float32 or tensor.ndim != 2 or str(tensor.shape[0]) != meta.get("rows") \
            or str(tensor.shape[1]) != meta.get("dim"):
        raise Corrupt(f"its tensor is {tuple(tensor.shape)} {tensor.dtype}, the header says {meta.get('rows')} x {meta.get('dim')} float32")
    if rows is not None and tensor.shape[0] != rows:
        raise Corrupt(f"it has {tensor.shape[0]} rows, not {rows}")
    for name, value in expected.items():
        if meta.get(name) != value:
            raise Corrupt(f"its header says {name} {meta.get(name)}, not {value}")
    if _sha256(tensor) != meta.get("sha256"):
        raise Corrupt("its contents do not match their checksum")
    return tensor


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


# ---------------------------------------------------------------------------------------------- the store

@dataclass
class Filled:
    embeddings: torch.Tensor
    computed: int  # rows computed by this call (0 on a hit; fewer than all when chunks of an earlier run were there)
    hit: bool  # read whole from the cache


class DiskCache:
    """One cache folder. Problems with it are warnings (one line each, through `warn`), never failures: a run
    goes on without what the cache could not give or take."""

    def __init__(self, root: Path, warn: Callable[[str], None] = _stderr):
        self.root = Path(root).expanduser()
        self.dir = self.root / SUBDIR
        self.warn = warn
        self.writable = True

    @classmethod
    def open(cls, root: Path | None = None, warn: Callable[[str], None] = _stderr) -> "DiskCache | None":
        """The cache at `root` (default: $CLIPBENCH_CACHE, else ~/.cache/clipbench), or None, after one warning
        line, when it cannot be written."""
        cache = cls(root or default_root(), warn)
        try:
            cache.dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=cache.dir):
                pass
        except OSError as exc:
            warn(f"warning: the embedding cache {cache.root} is not writable ({exc.strerror or exc}); going on "
                 "without it (make it writable, point CLIPBENCH_CACHE or --cache-dir elsewhere, or pass --no-cache)")
            return None
        return cache

    def entry_path(self, key: dict) -> Path:
        return self.dir / f"{digest_of(key)}.safetensors"

    def chunk_dir(self, key: dict) -> Path:
        return self.dir / f"{digest_of(key)}.chunks"

    def _read(self, path: Path, key: dict, what: str, rows: int | None = None, **expected: str) -> torch.Tensor | None:
        try:
            tensor = read_file(path, canonical(key), rows, **expected)
        except FileNotFoundError:
            return None
        except Corrupt as reason:
            self.warn(f"warning: {what} {path} is unusable ({reason}); it is removed and recomputed")
            path.unlink(missing_ok=True)
            return None
        except OSError as exc:
            self.warn(f"warning: cannot read {what} {path} ({exc.strerror or exc}); recomputing it")
            return None
        return tensor

    def _write(self, path: Path, tensor: torch.Tensor, meta: dict) -> None:
        if not self.writable:
            return
        try:
            for attempt in range(3):
                try:
                    write_file(path, tensor, meta)
                    break
                except FileNotFoundError:  # its chunk folder, removed by a run that finished the entry: make it again
                    if attempt == 2:
                        raise
        except OSError as exc:
            self.writable = False
            self.warn(f"warning: cannot write to the embedding cache {self.root} ({exc.strerror or exc}); this run "
                      "stores nothing more there (free some space, or pass --no-cache)")

    def load(self, key: dict, rows: int | None = None) -> torch.Tensor | None:
        """The whole entry of `key`, or None (missing, or unusable: then reported and removed)."""
        path = self.entry_path(key)
        tensor = self._read(path, key, "embedding cache entry", rows)
        if tensor is not None:
            try:
                os.utime(path)  # last used: what `cache clear --older-than` goes by
            except OSError:
                pass
        return tensor

    def save(self, key: dict, tensor: torch.Tensor, label: str = "") -> None:
        self._write(self.entry_path(key), tensor, {"kind": key["kind"], "key": canonical(key), "label": label})

    def cached(self, key: dict, compute: Callable[[], torch.Tensor], label: str = "") -> tuple[torch.Tensor, bool]:
        """A small entry (texts): read whole, or computed and saved. (tensor, whether it came from the cache)."""
        found = self.load(key)
        if found is not None:
            return found, True
        tensor = compute()
        if tensor.ndim == 2 and tensor.shape[0]:
            self.save(key, tensor, label)
        return tensor, False

    def fill(self, key: dict, rows: int, compute: Callable[[range], torch.Tensor], chunk_size: int = DEFAULT_CHUNK,
             label: str = "") -> Filled:
        """The entry of `key` with `rows` rows: read whole, or computed block by block (contiguous ranges of
        `chunk_size` rows, through `compute(block)`), each finished block saved as a chunk before the next starts,
        so that a run killed part-way continues from its last chunk. Chunks another run has finished are read,
        not recomputed; once the entry is whole it is saved and its chunks removed."""
        return fill_blocks(self, key, rows, compute, chunk_size, label)

    # The steps of `fill`, each one look at the disk or one write. benchmark.cache_ranks runs them on rank 0 alone
    # and shares what they found, so that every rank of a data-parallel run takes the same steps.

    def load_finished(self, key: dict, rows: int) -> torch.Tensor | None:
        """The whole entry, if another run finished it while this one was filling it (its chunks then go)."""
        if not self.entry_path(key).exists():
            return None
        whole = self.load(key, rows)
        if whole is not None:
            self._drop_chunks(key)
        return whole

    def load_chunk(self, key: dict, block: range, width: int | None) -> torch.Tensor | None:
        """The finished chunk of `block`, or None (missing, or unusable: then reported and removed). `width`: that
        of the chunks before it, which this one must have too."""
        path = self._chunk_path(key, block)
        part = self._read(path, key, "embedding cache chunk", len(block), start=str(block.start), stop=str(block.stop))
        if part is not None and width is not None and part.shape[1] != width:
            self.warn(f"warning: embedding cache chunk {path} is unusable (its width is {part.shape[1]}, "
                      f"not {width}); it is removed and recomputed")
            path.unlink(missing_ok=True)
            return None
        return part

    def save_chunk(self, key: dict, block: range, part: torch.Tensor, label: str = "") -> None:
        self._write(self._chunk_path(key, block), part, {"kind": key["kind"], "key": canonical(key), "label": label,
                                                         "start": str(block.start), "stop": str(block.stop)})

    def finish(self, key: dict, whole: torch.Tensor, label: str = "") -> None:
        """Save the whole entry (unless it has no rows) and remove its chunks."""
        if whole.shape[0]:
            self.save(key, whole, label)
        self._drop_chunks(key)

    def _chunk_path(self, key: dict, block: range) -> Path:
        return self.chunk_dir(key) / f"{block.start:010d}-{block.stop:010d}.safetensors"

    def _drop_chunks(self, key: dict) -> None:
        """Once the entry is whole its chunks are no longer needed. Whichever of two runs filling one entry finishes
        last removes them (a chunk the slower one wrote after the faster one's removal included)."""
        chunks = self.chunk_dir(key)
        if chunks.exists() and self.entry_path(key).exists():
            shutil.rmtree(chunks, ignore_errors=True)


def fill_blocks(store, key: dict, rows: int, compute: Callable[[range], torch.Tensor], chunk_size: int,
                label: str) -> Filled:
    """DiskCache.fill's loop, over the steps of `store` (a DiskCache, or benchmark.cache_ranks' RankZeroCache, which
    takes each step on rank 0 and shares its outcome): load, load_finished, load_chunk, save_chunk, finish."""
    import torch

    found = store.load(key, rows)
    if found is not None:
        return Filled(found, 0, True)
    blocks = [range(start, min(start + chunk_size, rows)) for start in range(0, rows, max(1, chunk_size))]
    parts, computed = [], 0
    for number, block in enumerate(blocks):
        part = None
        if len(blocks) > 1:
            if number:
                whole = store.load_finished(key, rows)  # another run finished it meanwhile
                if whole is not None:
                    return Filled(whole, computed, False)
            part = store.load_chunk(key, block, parts[0].shape[1] if parts else None)
        if part is None:
            part = compute(block).to("cpu", torch.float32)
            if part.ndim != 2 or part.shape[0] != len(block):
                raise ValueError(f"compute({block}) gave {tuple(part.shape)}, not {len(block)} rows")
            computed += len(block)
            if len(blocks) > 1:
                store.save_chunk(key, block, part, label)
        parts.append(part)
    whole = torch.cat(parts) if parts else torch.zeros(0, 0)
    store.finish(key, whole, label)
    return Filled(whole, computed, False)

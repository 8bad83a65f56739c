"""The embedding disk cache in a data-parallel run (torchrun): rank 0 owns it.

Rank 0 alone opens, reads and writes the cache folder. Every decision (a hit or a miss, which chunks of an entry
are already there, whether another run finished the entry meanwhile) is made by rank 0 inside a step that the
ranks agree on (`Context.call` / `Context.together`: a failure on rank 0 stops every rank with its message), and
shared: the rows rank 0 read go to every rank (`Context.broadcast_rows`), a miss tells every rank to compute the
block, split across them as always (benchmark.distributed.embed_split), and rank 0 writes what was computed. So
every rank takes the same collective steps in the same order, and a killed data-parallel run resumes from its
last chunk as one process does. Problems with the cache itself stay warnings on rank 0 (benchmark.cache).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .cache import DEFAULT_CHUNK, DiskCache, Filled, fill_blocks
from .cache_keys import digest_of
from .distributed import Context
from .errors import ClipbenchError

if TYPE_CHECKING:
    import torch


def open_cache(ctx: Context, enabled: bool, root: Path | None, warn: Callable[[str], None]):
    """The run's disk cache: None when off (or not writable, as rank 0 finds it); a DiskCache for one process; a
    RankZeroCache for a data-parallel run."""
    if not enabled:
        return None
    if not ctx.distributed:
        return DiskCache.open(root, warn)
    disk, opened = ctx.call(lambda: DiskCache.open(root, warn) if ctx.is_main else None, lambda found: found is not None)
    return RankZeroCache(ctx, disk, warn) if opened[0] else None


class RankZeroCache:
    """DiskCache's interface for EmbeddingCache (fill, cached, warn), with the disk on rank 0 alone (`disk` is None
    on the other ranks). Every method is a collective: every rank calls it, with the same key."""

    def __init__(self, ctx: Context, disk: DiskCache | None, warn: Callable[[str], None]):
        self.ctx = ctx
        self.disk = disk
        self.warn = warn

    def fill(self, key: dict, rows: int, compute: Callable[[range], torch.Tensor], chunk_size: int = DEFAULT_CHUNK,
             label: str = "") -> Filled:
        self._same_key(key)
        return fill_blocks(self, key, rows, compute, chunk_size, label)

    def cached(self, key: dict, compute: Callable[[], torch.Tensor], label: str = "") -> tuple[torch.Tensor, bool]:
        self._same_key(key)
        found = self.load(key)
        if found is not None:
            return found, True
        tensor = compute()
        if tensor.ndim == 2 and tensor.shape[0]:
            self._on_zero(lambda disk: disk.save(key, tensor, label))
        return tensor, False

    # the steps of fill_blocks, each taken on rank 0 and shared

    def load(self, key: dict, rows: int | None = None) -> torch.Tensor | None:
        return self._read(lambda disk: disk.load(key, rows))

    def load_finished(self, key: dict, rows: int) -> torch.Tensor | None:
        return self._read(lambda disk: disk.load_finished(key, rows))

    def load_chunk(self, key: dict, block: range, width: int | None) -> torch.Tensor | None:
        return self._read(lambda disk: disk.load_chunk(key, block, width))

    def save_chunk(self, key: dict, block: range, part: torch.Tensor, label: str = "") -> None:
        self._on_zero(lambda disk: disk.save_chunk(key, block, part, label))

    def finish(self, key: dict, whole: torch.Tensor, label: str = "") -> None:
        self._on_zero(lambda disk: disk.finish(key, whole, label))

    def _read(self, step: Callable[[DiskCache], torch.Tensor | None]) -> torch.Tensor | None:
        found, _ = self.ctx.call(lambda: step(self.disk) if self.ctx.is_main else None, lambda _: None)
        return self.ctx.broadcast_rows(found)

    def _on_zero(self, step: Callable[[DiskCache], None]) -> None:
        with self.ctx.together():
            if self.ctx.is_main:
                step(self.disk)

    def _same_key(self, key: dict) -> None:
        """Every rank must ask for the same entry; else they would take different steps (and wait on each other)."""
        _, digests = self.ctx.call(lambda: None, lambda _: digest_of(key))
        other = next((rank for rank, digest in enumerate(digests) if digest != digests[0]), None)
        if other is not None:
            raise ClipbenchError(f"rank {other} of {self.ctx.world_size} computes another embedding cache key than "
                                 f"rank 0 ({digests[other][:12]} vs {digests[0][:12]}: other library versions, weights "
                                 "or data on its machine); give every rank the same software and files, or pass --no-cache")

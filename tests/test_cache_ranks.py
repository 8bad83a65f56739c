"""benchmark.cache_ranks without processes: two ranks as two threads of this process, whose collectives meet at
a barrier (ThreadRank). Rank 0 has the cache folder; rank 1 must never touch it and must take the same steps."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
import torch

from benchmark.cache import DiskCache
from benchmark.cache_ranks import RankZeroCache, open_cache
from benchmark.distributed import Context, SharedFailure
from benchmark.errors import ClipbenchError

KEY = {"kind": "images", "what": "ten rows"}


class Hub:
    """The meeting point of two thread ranks: each collective waits for both (30 s at most, never forever)."""

    def __init__(self):
        self.barrier = threading.Barrier(2, timeout=30)
        self.slots: list = [None, None]
        self.steps: list[list[str]] = [[], []]

    def meet(self, rank: int, name: str, *args):
        self.steps[rank].append(name)
        if name == "all_gather_object":
            gathered, value = args
            self.slots[rank] = value
            self.barrier.wait()
            gathered[:] = list(self.slots)
        elif name == "broadcast_object_list":
            box, _ = args
            if rank == 0:
                self.slots[0] = box[0]
            self.barrier.wait()
            box[0] = self.slots[0]
        elif name == "broadcast":
            tensor, _ = args
            if rank == 0:
                self.slots[0] = tensor.clone()
            self.barrier.wait()
            if rank:
                tensor.copy_(self.slots[0])
        else:
            raise AssertionError(f"unexpected collective {name}")
        self.barrier.wait()


@dataclass(frozen=True)
class ThreadRank(Context):
    hub: Hub | None = None

    def _collective(self, operation, *args):
        return self.hub.meet(self.rank, operation.__name__, *args)


def rows(block: range) -> torch.Tensor:
    return torch.arange(block.start * 3, block.stop * 3, dtype=torch.float32).view(-1, 3)


def both(job) -> list:
    """job(ctx, computed) on rank 0 and rank 1 at once; each rank's result or exception."""
    hub, out = Hub(), [None, None]
    computed: list[list[range]] = [[], []]

    def one(rank: int) -> None:
        ctx = ThreadRank(rank, 2, rank, torch.device("cpu"), hub)
        try:
            out[rank] = job(ctx, computed[rank])
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out[rank] = exc
    threads = [threading.Thread(target=one, args=(rank,)) for rank in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert hub.steps[0] == hub.steps[1]  # the same collectives, in the same order
    return [out, computed]


def filler(folder, key=KEY, warned=None, chunk=4):
    def job(ctx, computed):
        cache = open_cache(ctx, True, folder if ctx.is_main else folder / "not-rank-0", (warned if warned is not None else []).append)
        assert isinstance(cache, RankZeroCache) and (cache.disk is not None) == ctx.is_main

        def compute(block):
            computed.append(block)
            return rows(block)
        return cache.fill(key if ctx.is_main else {**key, **getattr(job, "other", {})}, 10, compute, chunk, "ten")
    return job


def test_a_miss_is_computed_by_every_rank_and_written_by_rank_0_then_read_by_every_rank(tmp_path):
    (first, second), computed = both(filler(tmp_path))
    assert computed == [[range(0, 4), range(4, 8), range(8, 10)]] * 2
    for filled in (first, second):
        assert not filled.hit and filled.computed == 10 and torch.equal(filled.embeddings, rows(range(10)))
    disk = DiskCache(tmp_path)
    assert disk.entry_path(KEY).exists() and not disk.chunk_dir(KEY).exists()
    assert not (tmp_path / "not-rank-0").exists()  # rank 1 never opened a cache folder

    (first, second), computed = both(filler(tmp_path))
    assert computed == [[], []]
    for filled in (first, second):
        assert filled.hit and filled.computed == 0 and torch.equal(filled.embeddings, rows(range(10)))


def test_chunks_rank_0_finds_are_read_by_every_rank_and_only_the_rest_computed(tmp_path):
    DiskCache(tmp_path).save_chunk(KEY, range(4, 8), rows(range(4, 8)) + 0.5, "ten")
    (first, second), computed = both(filler(tmp_path))
    assert computed == [[range(0, 4), range(8, 10)]] * 2
    expected = torch.cat([rows(range(4)), rows(range(4, 8)) + 0.5, rows(range(8, 10))])
    for filled in (first, second):
        assert not filled.hit and filled.computed == 6 and torch.equal(filled.embeddings, expected)


def test_a_corrupt_entry_on_rank_0_is_a_warning_and_every_rank_recomputes(tmp_path):
    both(filler(tmp_path))
    DiskCache(tmp_path).entry_path(KEY).write_bytes(b"garbage")
    warned: list[str] = []
    (first, second), computed = both(filler(tmp_path, warned=warned))
    assert computed == [[range(0, 4), range(4, 8), range(8, 10)]] * 2 and not first.hit and not second.hit
    assert len(warned) == 1 and warned[0].startswith("warning: embedding cache entry") and "recomputed" in warned[0]
    assert torch.equal(second.embeddings, rows(range(10)))


def test_ranks_with_different_keys_fail_alike_in_one_line(tmp_path):
    job = filler(tmp_path)
    job.other = {"what": "other rows"}
    (first, second), computed = both(job)
    for failed in (first, second):
        assert isinstance(failed, ClipbenchError) and "\n" not in str(failed)
        assert str(failed).startswith("rank 1 of 2 computes another embedding cache key than rank 0")
    assert computed == [[], []]


def test_a_failure_on_rank_0_reaches_rank_1(tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError("the disk fell off")
    monkeypatch.setattr(DiskCache, "load", broken)
    (first, second), computed = both(filler(tmp_path))
    for failed in (first, second):
        assert isinstance(failed, SharedFailure) and str(failed).startswith("rank 0 of 2: internal error")
        assert "OSError: the disk fell off" in str(failed)
    assert computed == [[], []]


def test_texts_are_shared_as_a_whole_entry(tmp_path):
    def job(ctx, computed):
        cache = open_cache(ctx, True, tmp_path, lambda line: None)
        return [cache.cached(KEY, lambda: computed.append(1) or rows(range(5)), "five") for _ in range(2)]
    (first, second), computed = both(job)
    assert computed == [[1], [1]]  # computed once, then read from rank 0's disk
    for (missed, hit) in (first, second):
        assert missed[1] is False and hit[1] is True and torch.equal(hit[0], rows(range(5)))


def test_one_process_gets_the_disk_cache_itself_and_no_cache_when_off(tmp_path):
    assert type(open_cache(Context(), True, tmp_path, print)) is DiskCache
    assert open_cache(Context(), False, tmp_path, print) is None

"""Data-parallel runs: `torchrun --nproc-per-node N -m benchmark run ...` (or torchrun's multi-node form).

torchrun starts N copies of the command and tells each its place in the environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Every rank follows the same plan and the same control flow; each embeds
a contiguous block of each dataset's images and of each list of texts, and the blocks are gathered, in order,
on every rank. Rank 0 alone prints, computes what only results need (bootstrap, prediction lines) and writes;
the other ranks write nothing. Without torchrun (no WORLD_SIZE, or 1) this is one process and nothing here
communicates.

Faults: every step that can fail runs inside `Context.together()`. After the step the ranks exchange whether
it failed (`all_gather_object`); if any rank failed, every rank raises `SharedFailure` with the message of
the lowest failing rank, so all of them exit non-zero with one line and nobody waits in a collective for a rank
that has given up. A rank that dies without a word (killed, out of memory) is caught by torchrun, which stops
the others; across nodes, by the process group's timeout ($CLIPBENCH_DIST_TIMEOUT seconds, default 1800).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from .errors import ClipbenchError

TIMEOUT_ENV = "CLIPBENCH_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800


class SharedFailure(ClipbenchError):
    """A failure that every rank raises at the same point, after the exchange: it is not exchanged again."""


@dataclass(frozen=True)
class Context:
    """This process's place in the run: rank `rank` of `world_size` (0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None  # where this rank computes (cuda:LOCAL_RANK under NCCL)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Run the block on every rank, then agree: if it failed on any rank, it fails on every rank with
        the lowest failing rank's message (`rank R of N: ...`) and exit code. One process: just the block."""
        if not self.distributed:
            yield
            return
        try:
            yield
        except SharedFailure:
            raise  # every rank raises it here: already agreed
        except Exception as exc:  # noqa: BLE001 - a bug on one rank must stop the others too
            self._exchange(_failure(exc))
            raise AssertionError("unreachable: the exchange raises when a rank failed") from exc
        self._exchange(None)

    def call(self, step: Callable[[], object], note: Callable[[object], object]) -> tuple[object, list]:
        """`step()` on every rank, agreed as in `together`; also returns every rank's `note(result)`, in rank order."""
        try:
            out = step()
        except SharedFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - see together
            self._exchange(_failure(exc))
            raise AssertionError("unreachable: the exchange raises when a rank failed") from exc
        return out, self._exchange(None, note(out))

    def broadcast(self, value):
        """Rank 0's `value`, on every rank."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        self._collective(dist.broadcast_object_list, box, 0)
        return box[0]

    def broadcast_rows(self, rows: torch.Tensor | None) -> torch.Tensor | None:
        """Rank 0's (N, D) rows (or None), on every rank, as float32 on the CPU; the other ranks pass None."""
        if not self.distributed:
            return rows
        import torch.distributed as dist

        shape = self.broadcast(None if rows is None else tuple(rows.shape))
        if shape is None:
            return None
        if self.is_main:
            box = rows.to(self.device, torch.float32).contiguous()
        else:
            box = torch.empty(shape, dtype=torch.float32, device=self.device)
        self._collective(dist.broadcast, box, 0)
        return box.cpu()

    def _exchange(self, failure: tuple[str, int] | None, note=None) -> list:
        import torch.distributed as dist

        gathered: list = [None] * self.world_size
        self._collective(dist.all_gather_object, gathered, (failure, note))
        for rank, (failed, _) in enumerate(gathered):
            if failed is not None:
                message, code = failed
                raise SharedFailure(f"rank {rank} of {self.world_size}: {message}", code)
        return [n for _, n in gathered]

    def _collective(self, operation, *args):
        try:
            return operation(*args)
        except RuntimeError as exc:  # torch.distributed's errors (a timeout, a rank gone) are RuntimeErrors
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SharedFailure(
                f"rank {self.rank} of {self.world_size} lost the other ranks ({first[:200]}); one of them stopped "
                f"or hangs: see its own error (the wait is ${TIMEOUT_ENV} seconds, default {DEFAULT_TIMEOUT_S})") from None


def _failure(exc: BaseException) -> tuple[str, int]:
    if isinstance(exc, ClipbenchError):
        return str(exc), exc.exit_code
    first = str(exc).splitlines()[0] if str(exc) else ""
    return (f"internal error, please report: {type(exc).__name__}: {first} (re-run with --debug for the "
            "traceback)"), 1


_current = Context()


def current() -> Context:
    """The context of the run in progress (one process outside `session`)."""
    return _current


def _launch() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from torchrun's environment, or None for one process."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ClipbenchError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')}, RANK={os.environ.get('RANK')}, "
                             f"LOCAL_RANK={os.environ.get('LOCAL_RANK')}: not whole numbers; launch data-parallel "
                             "runs with torchrun, or unset WORLD_SIZE for one process", exit_code=2) from None
    if world < 1 or not 0 <= rank < world:
        raise ClipbenchError(f"RANK={rank} does not fit WORLD_SIZE={world}; launch data-parallel runs with torchrun, "
                             "or unset WORLD_SIZE for one process", exit_code=2)
    return (rank, world, local) if world > 1 else None


def _timeout() -> dt.timedelta:
    value = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ClipbenchError(f"${TIMEOUT_ENV}={value}: give the seconds a rank waits for the others, e.g. 1800",
                             exit_code=2)
    return dt.timedelta(seconds=seconds)


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[Context]:
    """The run's context: under torchrun, this process joins the process group for the block (NCCL when the
    run uses CUDA, each rank on cuda:LOCAL_RANK; gloo on the CPU) and leaves it after; else one process."""
    global _current
    launch = _launch()
    if launch is None or _current.distributed:
        yield _current if _current.distributed else Context(device=device)
        return
    import torch.distributed as dist

    rank, world, local = launch
    timeout = _timeout()
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    try:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world,
                                timeout=timeout)
    except (RuntimeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClipbenchError(f"rank {rank} of {world} could not join the other ranks ({first[:200]}); launch "
                             "data-parallel runs with torchrun (it sets MASTER_ADDR and MASTER_PORT), or unset "
                             "WORLD_SIZE for one process") from None
    _current = Context(rank, world, local, device)
    try:
        yield _current
    finally:
        _current = Context()
        dist.destroy_process_group()


def share(block: range, rank: int, world_size: int, unit: int = 1) -> range:
    """Rank `rank`'s part of `block`: a contiguous run of whole units of `unit` rows (batches), the units dealt
    as evenly as they go (the first ranks take one more), in rank order, no row twice, none left out. Whole
    batches mean every forward pass sees the very batch one process would."""
    units = -(-len(block) // unit)
    base, extra = divmod(units, world_size)
    first = rank * base + min(rank, extra)
    count = base + (rank < extra)
    return block[min(len(block), first * unit):min(len(block), (first + count) * unit)]


def embed_split(block: range, embed_block: Callable[[range], torch.Tensor], unit: int = 1) -> torch.Tensor:
    """The rows of `block` (one per index, in order), each rank computing `embed_block` on its `share` and the
    parts gathered on every rank, on the CPU. One process: `embed_block(block)`. Every rank must call it with
    the same block (it is a collective)."""
    ctx = current()
    if not ctx.distributed:
        return embed_block(block)
    import torch.distributed as dist

    mine = share(block, ctx.rank, ctx.world_size, unit)
    part, widths = ctx.call(lambda: embed_block(mine), lambda rows: rows.shape[1] if len(rows) else 0)
    width = max(widths)
    if width == 0:  # no rows anywhere
        return torch.zeros(0, 0)
    sizes = [len(share(block, rank, ctx.world_size, unit)) for rank in range(ctx.world_size)]
    padded = torch.zeros(max(sizes), width, dtype=torch.float32, device=ctx.device)
    if len(part):
        padded[:len(part)] = part.to(ctx.device)
    parts = [torch.empty_like(padded) for _ in sizes]
    ctx._collective(dist.all_gather, parts, padded)
    return torch.cat([rows[:size] for rows, size in zip(parts, sizes)]).cpu()

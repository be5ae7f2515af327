"""Work shared among the ranks of a torchrun process group; in a single process, plain calls.

``shared_map`` is the search's ``Mapper`` under ``torchrun``: rank r evaluates the genomes i with
i % world == r, in rounds of one genome per rank, and after each round every rank receives every
result (``all_gather_object``), so every rank holds the same cache, runs the same strategy steps
with the same generator and proposes the same candidates. Rank 0 writes; the others write nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import torch.distributed as dist

from qnas.errors import QnasError

__all__ = ["rank_and_world", "shared_map", "barrier"]

T = TypeVar("T")


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shared_map(evaluate: Callable[[T], Mapping[str, Any]], items: Sequence[T]) -> Iterator[dict[str, Any]]:
    """``evaluate`` of every item, yielded in order: under a process group each rank evaluates its share and
    yields every rank's results after each round (so a caller can log them as they come); an item that fails
    on one rank raises on every rank instead of leaving the others waiting."""
    rank, world = rank_and_world()
    if world == 1:
        for item in items:
            yield dict(evaluate(item))
        return
    for start in range(0, len(items), world):
        index, error, outcome = start + rank, None, None
        if index < len(items):
            try:
                outcome = ("ok", dict(evaluate(items[index])))
            except Exception as exc:  # re-raised below, on this rank as it is and on the others as a QnasError
                error, outcome = exc, ("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, outcome)
        if error is not None:
            raise error
        failed = [(r, o[1]) for r, o in enumerate(gathered) if o is not None and o[0] == "error"]
        if failed:
            raise QnasError(f"rank {failed[0][0]} failed to evaluate item {start + failed[0][0]}: {failed[0][1]}")
        for outcome in gathered[:min(world, len(items) - start)]:
            yield outcome[1]


def barrier() -> None:
    """Wait for every rank (nothing without a process group)."""
    if rank_and_world()[1] > 1:
        dist.barrier()

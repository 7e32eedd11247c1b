"""torch.distributed plumbing shared by train, evaluate and data generation.

Launched with ``torchrun`` (which sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``),
each process joins the default process group: NCCL when it runs on a GPU, gloo on the
CPU. Launched plainly, everything here is a no-op for a single process.
"""

import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

_owned = False  # whether init() created the process group (and close() may destroy it)


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes files (checkpoints, logs, plots, caches)."""
        return self.rank == 0

    def shard(self, n: int) -> range:
        """This rank's contiguous share of range(n); shares differ by at most one item."""
        return range(self.rank * n // self.world, (self.rank + 1) * n // self.world)


def context() -> Context:
    """The current process group's layout (one process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size()))
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), local_world)


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher) as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: Optional[str] = None) -> tuple[Context, Optional[torch.device]]:
    """Joins the process group when launched by torchrun; returns the context and, when
    ``device`` is given ("auto", "cpu", "cuda"), the device this rank runs on: with
    several processes and CUDA, the GPU ``cuda:LOCAL_RANK``."""
    global _owned
    if launched() and not dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        use_cuda = device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo",
                                device_id=torch.device("cuda", local_rank) if use_cuda else None)
        _owned = True
    ctx = context()
    if device is None:
        return ctx, None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda was asked for but no CUDA GPU is visible")
        if ctx.world > 1:
            resolved = torch.device("cuda", ctx.local_rank)
    return ctx, resolved


def barrier() -> None:
    if context().world > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sums ``tensor`` over ranks in place (no-op for one process); returns it."""
    if context().world > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensors) -> None:
    """Overwrites ``tensors`` (an iterable) with rank 0's values; no-op for one process."""
    if context().world > 1:
        for tensor in tensors:
            dist.broadcast(tensor, src=0)


def gather_to_main(obj):
    """The list of every rank's ``obj`` on rank 0 (``[obj]`` for one process), None elsewhere."""
    ctx = context()
    if ctx.world == 1:
        return [obj]
    out = [None] * ctx.world if ctx.main else None
    dist.gather_object(obj, out, dst=0)
    return out


def close() -> None:
    """Leaves the process group if init() created it; a group the caller set up stays."""
    global _owned
    if _owned and dist.is_initialized():
        dist.destroy_process_group()
    _owned = False

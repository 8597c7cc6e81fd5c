"""Multi-process data parallel through ``torchrun`` (gloo on CPU, nccl on CUDA).

The Trainer and the agents ask :func:`init_distributed` (or :func:`current`) who they are. The
Trainer builds batches whole on every rank and each rank keeps its own slice (:func:`shard`); an
agent's rank steps its own slice of the vector env. Gradients are averaged explicitly
(:func:`all_reduce_grads`) after the backward pass, whatever path the loss took through the
model, so a run of R ranks equals one process on the concatenated batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from .errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_environment() -> DistInfo:
    """This process's place in a torchrun launch, from its environment, before (or without)
    joining the process group."""
    return DistInfo(rank=int(os.environ.get("RANK", "0")), world_size=int(os.environ.get("WORLD_SIZE", "1")),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local)


def close_distributed() -> None:
    """Wait for every rank, then leave the process group, if this process joined one (a rank that
    left while another still talked to it would see its connections close mid-work)."""
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def current() -> DistInfo:
    """This process's place in the process group already joined (a single process when none is)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return DistInfo()
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def shard(batch: Any, info: DistInfo) -> Any:
    """This rank's equal slice (dim 0) of every tensor in ``batch``."""
    if not info.enabled:
        return batch
    return split_batch(batch, info.world_size)[info.rank]


def split_batch(batch: Any, parts: int) -> list[Any]:
    """Split every tensor of a nested batch into ``parts`` equal chunks along dim 0."""
    if parts == 1:
        return [batch]
    if isinstance(batch, torch.Tensor):
        if batch.shape[0] % parts:
            raise UserError(f"batch of {batch.shape[0]} rows cannot be split into {parts} equal parts")
        return list(batch.chunk(parts))
    if isinstance(batch, dict):
        pieces = {k: split_batch(v, parts) for k, v in batch.items()}
        return [{k: pieces[k][i] for k in batch} for i in range(parts)]
    if isinstance(batch, (list, tuple)):
        pieces = [split_batch(v, parts) for v in batch]
        return [type(batch)(p[i] for p in pieces) for i in range(parts)]
    return [batch] * parts


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    """Average a scalar over ranks (for logging)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item() / info.world_size)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_grads(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average the gradients of ``params`` over ranks, in one flat buffer. A parameter that no
    rank gave a gradient keeps None (an optimizer skips it, as in one process); one that only some
    ranks did counts as zero on the others."""
    if not info.enabled or not params:
        return
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    live = [p for p, h in zip(params, has.tolist()) if h]
    if not live:
        return
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in live])
    dist.all_reduce(flat)
    flat /= info.world_size
    for p, g in zip(live, flat.split([p.numel() for p in live])):
        p.grad.copy_(g.view_as(p.grad))


def broadcast_parameters(params: list[torch.Tensor], info: DistInfo) -> None:
    """Rank 0's values of ``params`` on every rank (what DDP does when it wraps a model)."""
    if not info.enabled:
        return
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)


def _comm_device() -> torch.device:
    """Where the process group's backend reduces: the current CUDA device under nccl, else CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The sum of ``t`` over ranks, on ``t``'s device (a new tensor; ``t`` itself when single process)."""
    if not info.enabled:
        return t
    out = t.detach().to(_comm_device(), copy=True)
    dist.all_reduce(out)
    return out.to(t.device)


def gather_objects(obj: Any, info: DistInfo) -> list[Any] | None:
    """Every rank's ``obj`` in rank order on rank 0 (None on the others); ``[obj]`` single process."""
    if not info.enabled:
        return [obj]
    out: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def global_mean(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``x``'s entries on all ranks together (``x.mean()`` single process)."""
    if not info.enabled:
        return x.mean()
    s = all_reduce_sum(torch.stack([x.sum(), torch.tensor(float(x.numel()), dtype=x.dtype, device=x.device)]), info)
    return s[0] / s[1]


def global_std(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The unbiased standard deviation of ``x``'s entries on all ranks together (``x.std()``
    single process), in two passes as torch computes it."""
    if not info.enabled:
        return x.std()
    m = global_mean(x, info)
    s = all_reduce_sum(torch.stack([((x - m) ** 2).sum(), torch.tensor(float(x.numel()), dtype=x.dtype,
                                                                        device=x.device)]), info)
    return (s[0] / (s[1] - 1)).sqrt()


def agree_max(value: int, info: DistInfo) -> int:
    """The largest of the ranks' ``value`` (e.g. a stop signal one rank received), on every rank."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())

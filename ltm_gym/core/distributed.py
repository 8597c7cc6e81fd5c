"""Multi-process data parallel through ``torchrun`` (gloo on CPU, nccl on CUDA).

The Trainer asks :func:`dist_info` who it is; batches are built whole on every rank and each rank
keeps its own slice (:func:`shard`), so a DDP run equals one process on the concatenated batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


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
            raise ValueError(f"batch of {batch.shape[0]} rows cannot be split into {parts} equal parts")
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

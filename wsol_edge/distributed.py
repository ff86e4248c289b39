"""Data-parallel training across the processes torchrun starts (architecture.md, "Scale-out"):
``torchrun --nproc_per_node 8 -m wsol_edge.train --config ...``.

Plain PyTorch DDP, as torchvision's references use it: one process per GPU (NCCL), or processes on
the CPU (gloo) where there is no GPU; ``--batch-size`` is per process, so the global batch is
``batch-size x processes``; each process reads its own share of every epoch (DistributedSampler, drawn
from ``--seed`` and the epoch). Process 0 writes the checkpoint, re-estimates BatchNorm statistics and
chooses the CAM threshold; BatchNorm statistics are process 0's during training (DDP broadcasts its
buffers), as without ``SyncBatchNorm`` in torchvision's references.

The methods' random draws come from one stream that every process seeds alike (``--seed``) and restores
alike on ``--resume``: a step's draw that holds for the whole batch (ICL's drop kind) is then one per global
step, as in a single process; the price is that per-image draws (hiding masks) repeat across the processes'
shares of a step, on different images. ``--resume`` continues a run bit for bit (tests/test_distributed.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .torch_device import resolve_device


class ReplicasDiverged(RuntimeError):
    """The processes ended training with different weights."""


@dataclass(frozen=True)
class ProcessGroup:
    rank: int
    world_size: int
    local_rank: int
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from the variables torchrun sets, or None for a single process."""
    world = os.environ.get("WORLD_SIZE")
    if world is None or int(world) <= 1:
        return None
    return int(os.environ["RANK"]), int(world), int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))


def start(device_flag: str) -> tuple[ProcessGroup | None, str]:
    """Join torchrun's process group, if any, and pick this process's device: cuda:LOCAL_RANK with NCCL,
    else the CPU with gloo. A single process gets ``resolve_device(device_flag)`` and no group."""
    launched = launched_by_torchrun()
    if launched is None:
        return None, resolve_device(device_flag)
    rank, world, local_rank = launched
    name = device_flag.strip().lower()
    if name.startswith("cuda:"):
        raise ValueError(f"--device {name} under torchrun: each process takes the GPU its LOCAL_RANK names; give "
                         "--device cuda (or auto)")
    import torch
    import torch.distributed as dist

    if resolve_device(name) == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"torchrun started process {local_rank} on this node, which sees only "
                             f"{torch.cuda.device_count()} CUDA device(s): give --nproc_per_node at most that")
        torch.cuda.set_device(local_rank)
        device, backend = f"cuda:{local_rank}", "nccl"
    else:
        device, backend = "cpu", "gloo"
    dist.init_process_group(backend)  # env://, from torchrun's MASTER_ADDR / MASTER_PORT
    return ProcessGroup(rank, world, local_rank, backend), device


def stop(group: ProcessGroup | None, finished: bool = True) -> None:
    """Leave the process group. After a run that ``finished``, every process first waits for the others at a
    barrier, so that all of them tear the group down together, as PyTorch's documentation of
    ``destroy_process_group`` asks; before, the other processes destroyed theirs while process 0 still worked
    (BatchNorm, threshold) with its own. Without the barrier, about one two-process gloo run in a hundred here
    ended with one process aborting in C++ ("terminate called without an active exception") after the checkpoint
    was written; the cause inside gloo was not established, so the barrier is the documented shutdown rather
    than a proven fix. After an error there is no barrier: the processes that did not fail would wait at it
    until the group's timeout, while torchrun stops them at once."""
    if group is None:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    if finished:
        dist.barrier(device_ids=[group.local_rank] if group.backend == "nccl" else None)
    dist.destroy_process_group()


def merge_sums(group: ProcessGroup | None, sums: dict) -> dict:
    """Every process's ``train.add_step`` sums (nested dicts of numbers) added up. Gathered as objects, so that
    processes holding different keys (a step group one of them never drew) still merge."""
    if group is None:
        return sums
    import torch.distributed as dist

    gathered: list = [None] * group.world_size
    dist.all_gather_object(gathered, sums)

    def add(a: dict, b: dict) -> dict:
        out = dict(a)
        for k, v in b.items():
            out[k] = add(out.get(k, {}), v) if isinstance(v, dict) else out.get(k, 0) + v
        return out

    total: dict = {}
    for part in gathered:
        total = add(total, part)
    return total


def replicas_agree(group: ProcessGroup | None, model) -> bool:
    """Whether every process ends with the same weights (what DDP's gradient averaging promises): a SHA-256 of
    the parameters' bytes, compared across processes, so no arithmetic (whose order could differ between GPU or
    CPU models) stands between the weights and the answer. Buffers are left out: each process's last step
    updates its own BatchNorm statistics after DDP's broadcast (process 0's are the ones saved)."""
    if group is None:
        return True
    import hashlib

    import torch
    import torch.distributed as dist

    digest = hashlib.sha256()
    for t in model.parameters():
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    gathered: list = [None] * group.world_size
    dist.all_gather_object(gathered, digest.hexdigest())
    return len(set(gathered)) == 1


def data_parallel(model, device: str):
    """DDP around ``model.training_loss`` (DDP synchronises through ``forward``). Every model here holds parameters
    a training step leaves out (the backbone's own ImageNet classifier, kept in the model but never used; a
    method's branches that a step may skip), hence ``find_unused_parameters``: without it DDP stops at the
    second step."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    class TrainingLoss(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, images, labels):
            return self.inner.training_loss(images, labels)

    ids = [torch.device(device).index] if device.startswith("cuda") else None
    return DistributedDataParallel(TrainingLoss(model), device_ids=ids, find_unused_parameters=True)

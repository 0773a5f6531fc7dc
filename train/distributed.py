"""Data-parallel training helpers: torchrun-compatible process groups (gloo on CPU, nccl on
GPU), a local spawner for ``steport train --nproc N``, and the deterministic sharding rule.

Sharding: every rank draws the same permutation (same seed), cuts it into global batches of
``batch_size`` and takes its contiguous slice of each (``tensor_split``). With the loss
summed and scaled by ``world / global_batch`` (see loop.py), DDP's gradient average equals
the single-process mean over the global batch, so N processes with B/N samples each follow
the same trajectory as one process with B samples (up to float reduction order)."""
from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

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


def env_info() -> DistInfo:
    """Rank/world from the environment torchrun (or spawn() below) sets; 1 process otherwise."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as e:
        raise ValueError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {e}") from None
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistInfo(rank, world, local)


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistInfo()


def init(device: str) -> DistInfo:
    """Join the process group when launched with WORLD_SIZE > 1; a no-op otherwise.
    STEPORT_DIST_TIMEOUT (seconds, default 1800) bounds waits for the other ranks."""
    info = env_info()
    if not info.enabled or dist.is_initialized():
        return current() if dist.is_initialized() else info
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ValueError(f"WORLD_SIZE={info.world_size} but {var} is not set; launch with "
                             f"torchrun or `steport train --nproc N`")
    cuda = device.startswith("cuda")
    if cuda:
        if info.local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {info.local_rank} but only {torch.cuda.device_count()} "
                             f"GPU(s); use at most that many processes per node")
        torch.cuda.set_device(info.local_rank)
    try:
        timeout = timedelta(seconds=float(os.environ.get("STEPORT_DIST_TIMEOUT", "1800")))
    except ValueError:
        raise ValueError("STEPORT_DIST_TIMEOUT must be a number of seconds") from None
    dist.init_process_group("nccl" if cuda else "gloo", rank=info.rank,
                            world_size=info.world_size, timeout=timeout)
    return info


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_slice(idx: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """This rank's contiguous part of one global batch of indices."""
    return idx.tensor_split(info.world_size)[info.rank] if info.enabled else idx


def all_reduce_sum(values: list[float], info: DistInfo, device: str = "cpu") -> list[float]:
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.cpu().tolist()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, fn: Callable, args: tuple) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if Path("/sys/class/net/lo").exists():  # local workers talk over loopback only
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    # share the cores instead of oversubscribing them (torchrun sets OMP_NUM_THREADS=1)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    fn(*args)


def spawn(nproc: int, fn: Callable, *args: Any) -> None:
    """Run ``fn(*args)`` in ``nproc`` local processes on 127.0.0.1 with a free port, each with
    the torchrun environment set. Raises RuntimeError naming the failing rank."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    try:
        mp.start_processes(_worker, args=(nproc, free_port(), fn, args), nprocs=nproc,
                           start_method="spawn", join=True)
    except mp.ProcessRaisedException as e:
        last = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        raise RuntimeError(f"worker process {e.error_index} failed: {last}") from None
    except mp.ProcessExitedException as e:
        raise RuntimeError(f"worker process {e.error_index} exited with code {e.exit_code}") from None

"""Several processes writing one dataset: under ``torchrun`` or spawned by ``num_processes``.

Each process learns its place from the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``); spawned processes get the same variables, so there is a single code path.
"""

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

# Rank 0 may train the label filter's classifier while the others wait: be generous.
BARRIER_TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Ranks":
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def join_group(ranks: Ranks) -> None:
    """Connect the processes (gloo: a barrier is all they share, and it works with or without GPUs)."""
    if ranks.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", rank=ranks.rank, world_size=ranks.world_size, timeout=BARRIER_TIMEOUT)


def leave_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ranks: Ranks) -> None:
    if ranks.world_size > 1:
        dist.barrier()


@contextmanager
def main_first(ranks: Ranks) -> Iterator[None]:
    """Rank 0 runs the block first (it fills caches); the others run it once rank 0 is done."""
    if not ranks.is_main:
        barrier(ranks)
    yield
    if ranks.is_main:
        barrier(ranks)


def device_for(choice: str, ranks: Ranks) -> torch.device:
    """``auto``: this process's GPU (``cuda:<local rank>``) when CUDA is present, else the CPU."""
    if choice == "auto":
        return torch.device(f"cuda:{ranks.local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _process_entry(index: int, world_size: int, port: int, task: Callable[..., Any], args: tuple) -> None:
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # The processes share the machine's cores, as torchrun's OMP_NUM_THREADS=1 default intends.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
    task(*args)


def spawn(task: Callable[..., Any], num_processes: int, *args: Any) -> None:
    """Run ``task(*args)`` in ``num_processes`` fresh processes as ranks 0..n-1; if one fails, all stop."""
    mp.start_processes(_process_entry, args=(num_processes, free_port(), task, args), nprocs=num_processes,
                       start_method="spawn")

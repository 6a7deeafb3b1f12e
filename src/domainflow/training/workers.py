"""Domain worker processes: several domains training at once on one machine (`scale.domain_workers`)."""

from __future__ import annotations

import os

import torch

from domainflow.config import ScaleConfig


def threads_per_worker(scale: ScaleConfig, workers: int, cpus: int | None = None) -> int:
    """`scale.torch_threads`, or the machine's cores shared evenly among `workers` (at least one each)."""
    if scale.torch_threads:
        return scale.torch_threads
    return max(1, (cpus or os.cpu_count() or 1) // workers)


def start_worker(torch_threads: int) -> None:
    """Runs once in each worker process before it trains: its share of the cores.

    Without it every worker's torch takes all cores, and N workers oversubscribe the machine N times.
    """
    torch.set_num_threads(torch_threads)

"""Domain workers: each gets its share of the cores, and how many run does not change what is trained."""

from __future__ import annotations

import torch

from domainflow.config import ScaleConfig, build_config
from domainflow.training.workers import start_worker, threads_per_worker


def test_the_cores_are_shared_among_the_workers():
    assert threads_per_worker(ScaleConfig(domain_workers=2), workers=2, cpus=16) == 8
    assert threads_per_worker(ScaleConfig(domain_workers=3), workers=3, cpus=2) == 1
    assert threads_per_worker(ScaleConfig(domain_workers=4, torch_threads=3), workers=2, cpus=16) == 3


def test_a_worker_starts_with_its_share(monkeypatch):
    before = torch.get_num_threads()
    try:
        start_worker(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_worker_count_is_not_part_of_what_a_run_trains():
    one, four = build_config(), build_config({"scale": {"domain_workers": 4}})
    assert one.config_hash() == four.config_hash()
    assert one.config_hash() != build_config({"training": {"seed": 1}}).config_hash()

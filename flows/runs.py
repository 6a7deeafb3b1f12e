"""How `domainflow` runs a flow in its own process, as `domainflow run`, `train`, `promote` and `monitor` do.

Not a flow: the settings around one. Prefect 3.8 sends each flow run's heartbeats from a thread that
it joins when the run ends, which costs up to a second per flow run (sub-flows included). Heartbeats
let a server's automation mark a run whose process died as crashed; on Prefect's ephemeral API, which
lives and dies with this process, nothing watches them, so they are off there. Against a server
(PREFECT_API_URL) they stay on, as do the runs of deployments under a worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings


@contextmanager
def local_run_settings() -> Iterator[None]:
    if PREFECT_API_URL.value():
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield

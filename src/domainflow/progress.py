"""Progress of a flow run for the terminal: each flow run counts the stages its own body declares.

A flow's stages are the tasks its function names (called, submitted, or handed to a task
runner), read from the flow's source; no count is kept by hand, so a task added to a flow
is a stage of the bar at once. The total grows by a flow's stage count when a run of it
begins (sub-flows included, so a branch not taken adds nothing); a stage is done at the
first finished run of its task in that flow run (tuning workers share one stage); when a
flow run finishes, the stages its branches skipped count as done.

Written against Prefect's run loggers (`prefect.flow_runs`, `prefect.task_runs`) and its
Task/Flow objects without importing prefect: the library stays free of it.
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

BEGINNING = "Beginning "
FINISHED = "Finished in state "


def _prefect_kind(obj: Any) -> str | None:
    kind = type(obj)
    if kind.__module__.startswith("prefect.") and kind.__name__ in ("Task", "Flow"):
        return kind.__name__
    return None


def declared_stages(flow: Any) -> tuple[str, ...]:
    """The names of the tasks `flow`'s function names, in the order they first appear in its source."""
    fn = flow.fn
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    names = sorted((node for node in ast.walk(tree) if isinstance(node, ast.Name)),
                   key=lambda node: (node.lineno, node.col_offset))  # fmt: skip
    stages: list[str] = []
    for node in names:
        found = fn.__globals__.get(node.id)
        if _prefect_kind(found) == "Task" and found.name not in stages:
            stages.append(found.name)
    return tuple(stages)


def flows_in(modules: Iterable[Any]) -> dict[str, tuple[str, ...]]:
    """Every flow defined in `modules`, by its name, with its declared stages."""
    return {
        value.name: declared_stages(value)
        for module in modules
        for value in vars(module).values()
        if _prefect_kind(value) == "Flow" and value.fn.__module__ == module.__name__
    }


@dataclass
class StageCounter:
    """Counts finished stages across the flow runs of one command; `on_change(done, total, line)` shows them."""

    stages: dict[str, tuple[str, ...]]  # flow name -> its declared stages
    on_change: Callable[[int, int, str], None]
    done: int = 0
    total: int = 0
    # "flow: task" of task runs a flow ran without declaring them: stages the bar could not count.
    undeclared: set[str] = field(default_factory=set)
    _open: dict[str, set[str]] = field(default_factory=dict)  # flow run id -> stages not yet finished
    _flows: dict[str, str] = field(default_factory=dict)  # flow run id -> flow name

    def flow_run_began(self, flow_run_id: str, flow_name: str) -> None:
        if flow_run_id in self._open:
            return
        remaining = set(self.stages.get(flow_name, ()))
        self._open[flow_run_id], self._flows[flow_run_id] = remaining, flow_name
        self.total += len(remaining)
        self.on_change(self.done, self.total, f"{flow_name}: started")

    def task_run_finished(self, flow_run_id: str, task_name: str, line: str) -> None:
        remaining = self._open.get(flow_run_id)
        if remaining is not None and task_name in remaining:
            remaining.discard(task_name)
            self.done += 1
        elif flow_run_id in self._flows and task_name not in self.stages.get(self._flows[flow_run_id], ()):
            self.undeclared.add(f"{self._flows[flow_run_id]}: {task_name}")
        self.on_change(self.done, self.total, line)

    def flow_run_finished(self, flow_run_id: str, line: str) -> None:
        skipped = self._open.pop(flow_run_id, set())
        self.done += len(skipped)
        self.on_change(self.done, self.total, line)


class StageProgress(logging.Handler):
    """Feeds a StageCounter from Prefect's flow-run and task-run log records."""

    def __init__(self, counter: StageCounter):
        super().__init__(level=logging.INFO)
        self.counter = counter

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        flow_run_id = str(getattr(record, "flow_run_id", "") or "")
        flow_run = getattr(record, "flow_run_name", "") or ""
        if not flow_run_id:
            return
        task_name = getattr(record, "task_name", None)
        if task_name is not None:
            if message.startswith(FINISHED):
                self.counter.task_run_finished(flow_run_id, task_name, f"{flow_run} {task_name}: {message[18:]}")
        elif message.startswith(BEGINNING):
            self.counter.flow_run_began(flow_run_id, getattr(record, "flow_name", "") or "")
        elif message.startswith(FINISHED):
            self.counter.flow_run_finished(flow_run_id, f"{flow_run}: {message[18:]}")

"""The loop's timeline as a picture: each domain's daily log loss and drift share, with what happened when.

Event days are on the x axis: the replayed months the champion served, the day monitoring
judged them (the end of the window), and the retrained version's test window.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd

from domainflow.config import PipelineConfig


def plot_timeline(outcomes: list, config: PipelineConfig, path: Path) -> Path:
    """One panel per domain; returns the PNG's path. `outcomes` are the run's DomainOutcomes."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    shown = [o for o in outcomes if o.monitoring is not None and o.monitoring.daily]
    figure, axes = plt.subplots(max(len(shown), 1), 1, figsize=(10, 3.2 * max(len(shown), 1)), squeeze=False)
    for axis, outcome in zip(axes[:, 0], shown, strict=False):
        daily = pd.DataFrame(outcome.monitoring.daily)
        days = pd.to_datetime(daily["day"])
        axis.plot(days, daily["log_loss"], color="tab:blue", label="daily log loss (labelled)")
        axis.set_ylabel("log loss")
        twin = axis.twinx()
        twin.plot(days, daily["drift_share"], color="tab:orange", label="share of drifted columns")
        twin.set_ylim(0, 1)
        twin.axhline(config.monitoring.drift_share, color="tab:orange", linestyle=":", linewidth=1)
        twin.set_ylabel("drift share")
        axis.axvline(days.max(), color="black", linestyle="--", linewidth=1)
        axis.annotate(outcome.monitoring.headline()[:70], (days.max(), axis.get_ylim()[1]), fontsize=7,
                      ha="right", va="top")  # fmt: skip
        retraining = outcome.retraining
        if retraining is not None and retraining.split is not None:
            axis.axvspan(retraining.split.validation_until, retraining.split.test_until, color="tab:green", alpha=0.1,
                         label=f"retrain's test window ({retraining.status})")  # fmt: skip
        lines = axis.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        axis.legend(lines, [line.get_label() for line in lines], fontsize=7, loc="upper left")
        story = textwrap.fill(" → ".join(outcome.timeline()), width=150, max_lines=3, placeholder=" …")
        axis.set_title(f"{outcome.domain}: {story}", fontsize=8, loc="left")
    figure.suptitle(f"{config.name}: the served champions over the replayed months")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def timeline_markdown(outcomes: list, config: PipelineConfig, plot: Path) -> str:
    """The loop's steps per domain, as the Prefect artifact beside the plot."""
    lines = [f"# {config.name} lifecycle", ""]
    for outcome in outcomes:
        lines += [f"## {outcome.domain}", *(f"1. {step}" for step in outcome.timeline()), ""]
    return "\n".join([*lines, f"Plot: `{plot}`"])

"""`domainflow run`'s closed loop on a shrunken real config: serve the autumn months, monitor, retrain, canary.

One domain of the sampled flights (about 125 rows a month), with the monitoring minimums and the
canary's sample counts scaled down to match; the real server, Prefect API, MLflow store and log.
From September on, the domain's busiest carrier is delayed on every flight (a concept shift): the
served model really gets worse, which is what a retrain needs as evidence (drift alone starts none).
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from domainflow.config import build_config
from domainflow.monitoring.events import QUALITY_DEGRADED, RETRAINING_EVENTS
from domainflow.serving.app import create_app
from domainflow.serving.server import serve_in_background
from domainflow.settings import resolve_settings

from ..conftest import replay_keys, tiny_overrides

pytestmark = pytest.mark.slow

STEPS = [{"weight": w, "min_bake_seconds": 0, "min_samples": n, "require_quality": q}
         for w, n, q in ((0.01, 5, False), (0.1, 40, True), (0.5, 100, True), (1.0, 20, False))]  # fmt: skip


def shifted(source, path, since="2013-09-01", domain="EWR"):
    """`source` with every flight of `domain`'s busiest carrier delayed 90 minutes from `since` on."""
    import pandas as pd

    flights = pd.read_csv(source)
    ours = flights["origin"] == domain
    carrier = flights.loc[ours, "carrier"].value_counts().index[0]
    late = ours & (flights["carrier"] == carrier) & (pd.to_datetime(flights["scheduled_departure"]) >= since)
    flights.loc[late, "arr_delay"] = 90.0
    flights.to_csv(path, index=False)
    return path


def test_a_quality_drop_in_the_served_months_retrains_the_domain_and_canaries_the_retrain(
    flights_sample_csv, domainflow_home, tmp_path
):
    from domainflow.flows.lifecycle import run_lifecycle

    config = build_config({
        **tiny_overrides(shifted(flights_sample_csv, tmp_path / "shifted.csv")),
        "domains": {"values": ["EWR"]},
        # 259 served rows test with less power than a full airport's 20,000: the reference is too small to
        # calibrate drift thresholds (the fixed ones serve, logged), and the dataset rule is lowered to 30 %.
        "monitoring": {"min_window_rows": 100, "min_labelled": 40, "reference_rows": 2_000, "drift_share": 0.3},
        "canary": {"steps": STEPS, "min_labelled": 20, "quality_margin": 0.2, "poll_seconds": 0.2,
                   "max_step_seconds": 120},
        # The retrain is calibrated on September, the canary judged on November-December: its quality
        # needs more labels than the network's did to be told within the margin.
        "replay": {"rate_limit": 400, "feedback_delay_seconds": 0.1, "max_rows": 15_000},
    })  # fmt: skip
    settings = resolve_settings()
    with replay_keys(settings), serve_in_background(create_app(config, settings), host="127.0.0.1", port=0) as url:
        state = run_lifecycle(config, serving_url=url, return_state=True)

    [outcome] = state.result()
    assert outcome.status == "registered" and outcome.version == "1" and "champion" in outcome.aliases

    # Sep-Oct were served to v1 and judged against its Jan-Jun training rows.
    monitoring = outcome.monitoring
    assert monitoring.version == "1" and QUALITY_DEGRADED in monitoring.events, monitoring
    assert monitoring.retraining_event in RETRAINING_EVENTS
    assert monitoring.report_uri.startswith(settings.artifact_root.rstrip("/"))
    assert [day["day"][:7] for day in monitoring.daily][-1] == "2013-10"

    # The event retrained EWR on the labelled months: test window October, the canary on Nov-Dec.
    retraining = outcome.retraining
    assert retraining.status == "retrained" and retraining.reason == monitoring.retraining_event
    assert (retraining.split.test_until.date().isoformat(), retraining.training.version) == ("2013-11-01", "2")
    assert retraining.training.status == "registered", retraining.training.gate
    assert retraining.promotion.version == "2" and retraining.promotion.status in ("promoted", "rolled_back")

    client = MlflowClient(settings.tracking_uri)
    champion = str(client.get_model_version_by_alias(config.registered_model_name("EWR"), "champion").version)
    assert champion == ("2" if retraining.promotion.status == "promoted" else "1")
    steps = outcome.timeline()
    assert steps[0] == "trained v1 (registered)" and steps[2].startswith("monitored v1: ")
    assert "quality degraded" in steps[2]
    assert steps[-1].startswith("canary v2 ")
    assert (settings.reports_dir / "flight-delay-timeline.png").stat().st_size > 10_000

    # Every operation of the loop is in the audit log, whose chain holds; the retrain names the event that
    # triggered it, by its Prefect id.
    from domainflow.store.audit import read_audit, verify_audit
    from domainflow.store.database import open_database

    engine = open_database(settings.database_url)
    audit = read_audit(engine, "EWR")
    kinds = {e.action for e in audit}
    assert {"training_started", "training_ended", "registration", "gate_verdict", "alias", "weights",
            "rollout_config", "retrain"} <= kinds  # fmt: skip
    assert [e.subject for e in audit if e.action == "registration"] == ["v1", "v2"]
    assert sum(e.action == "training_started" for e in audit) == sum(e.action == "training_ended" for e in audit) == 2
    [retrain] = [e for e in audit if e.action == "retrain"]
    event_id = monitoring.event_ids[monitoring.retraining_event]
    assert (retrain.subject, retrain.after["event_id"]) == (event_id, event_id)
    assert retrain.reason.startswith(f"{monitoring.retraining_event}: train before ")
    decided = [e for e in audit if e.action in ("canary_step", "rollback") and e.subject == "v2"]
    if retraining.promotion.status == "promoted":
        assert [e.after.get("status") for e in decided][-1] == "promoted" and len(decided) == len(STEPS)
    else:
        assert decided[-1].action == "rollback"
    assert verify_audit(engine).ok

    # The same event again with the labels still ending on 1 November: v2 answers it, nothing is retrained.
    # (Here the canary's Nov-Dec labels have since arrived, so without the date the window would move.)
    from domainflow.flows.retraining import retrain_domain

    again = retrain_domain(
        "EWR", config, reason=monitoring.retraining_event, labelled_until=retraining.split.test_until
    )
    assert again.status == "skipped" and "v2 was trained on this window already" in again.note

    # The whole run again, same data, config and code: the stored outcome, and nothing new anywhere.
    def world() -> dict:
        from sqlalchemy import func, select

        from domainflow.store.database import open_database
        from domainflow.store.schema import audit_log, feedback, predictions, promotions

        engine = open_database(settings.database_url)
        with engine.connect() as connection:
            rows = {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in (predictions, feedback, promotions)}  # fmt: skip
            # Each run makes its replay client's keys (and revokes them): audited, and all that is new.
            rows["audit_log"] = connection.execute(
                select(func.count()).select_from(audit_log).where(audit_log.c.action != "key")
            ).scalar_one()
        name = config.registered_model_name("EWR")
        return {**rows, "runs": len(client.search_runs([client.get_experiment_by_name(f"{config.name}/EWR")
                                                         .experiment_id], max_results=1_000)),
                "versions": len(client.search_model_versions(f"name = '{name}'")),
                "aliases": dict(client.get_registered_model(name).aliases)}  # fmt: skip

    before = world()
    with replay_keys(settings), serve_in_background(create_app(config, settings), host="127.0.0.1", port=0) as url:
        [rerun] = run_lifecycle(config, serving_url=url, return_state=True).result()

    assert world() == before
    assert rerun.unchanged_since and rerun.unchanged_since.startswith("unchanged since prefect-flow-run/")
    assert rerun.timeline()[1:] == outcome.timeline()
    assert (rerun.version, rerun.gate, rerun.retraining.training.version) == (
        outcome.version, outcome.gate, retraining.training.version
    )  # fmt: skip

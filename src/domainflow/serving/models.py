"""Which models serve each domain: its rollout's arms (or the `champion` alias), verified, loaded, swapped whole.

A refresher re-reads the rollouts and aliases every `serving.refresh_seconds` and builds a
new serving table per domain; requests read whichever table is current, so a weight change
needs no restart and a request never sees half of one. A version whose files fail their
digest check, or that fails to load, is refused: the arm is shown with the reason, its
traffic goes to the champion arm, and the models loaded before keep serving.

Only registered versions of the configured model names are loaded, from the configured
registry, by number (or the `champion` alias): a rollout naming another model, or a
version that is not a number (a URI, a path), is refused before anything is fetched.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy import Engine

from domainflow.config import PipelineConfig
from domainflow.redaction import without_passwords
from domainflow.registry.integrity import IntegrityError, verified_model_folder
from domainflow.registry.mlflow_registry import CHAMPION, absent_in_registry
from domainflow.serving.routing import route
from domainflow.serving.schemas import VERSION_NUMBER
from domainflow.store.rollouts import CHAMPION_ARM, Arm, Rollout, read_rollouts

logger = logging.getLogger(__name__)

REGISTRY_VERSION = re.compile(VERSION_NUMBER)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    model: Any  # mlflow.pyfunc.PyFuncModel
    folder: tempfile.TemporaryDirectory = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


@dataclass(frozen=True)
class ServingTable:
    """One domain's arms and their loaded models, as of one refresh."""

    domain: str
    model_name: str
    source: str  # "rollout", "champion alias" or "none"
    revision: int | None
    reason: str
    arms: tuple[Arm, ...]
    models: Mapping[str, LoadedModel]  # variant -> model, for the arms that loaded
    fallback: tuple[str, LoadedModel] | None  # (variant, model) serving the traffic of arms not loaded
    problems: Mapping[str, str]  # variant (or "" for the domain) -> why it does not serve

    @property
    def ready(self) -> bool:
        return self.fallback is not None

    def pick(self, request_id: str) -> tuple[str, LoadedModel] | None:
        """(variant, model) serving `request_id`; None when neither its arm nor the champion is loaded."""
        if self.arms:
            arm = route(request_id, self.arms)
            if arm.variant in self.models:
                return arm.variant, self.models[arm.variant]
        return self.fallback


class ModelCache:
    """Loaded versions by (name, version); a refused version is retried after `retry_seconds`."""

    def __init__(
        self,
        tracking_uri: str,
        retry_seconds: float = 60.0,
        on_failure: Callable[[str, str, str], None] = lambda name, version, kind: None,
    ):
        self.tracking_uri, self.retry_seconds, self.on_failure = tracking_uri, retry_seconds, on_failure
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._failed: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, name: str, version: str) -> tuple[LoadedModel | None, str | None]:
        """(model, None) or (None, why it is refused)."""
        key = (name, version)
        if key in self._loaded:
            return self._loaded[key], None
        failure = self._failed.get(key)
        if failure is not None and time.monotonic() - failure[1] < self.retry_seconds:
            return None, failure[0]
        if not REGISTRY_VERSION.fullmatch(version):
            return None, self._refuse(
                key, "source", f"{name}: version {version!r} is not a registered version number; only numbered "
                "versions of the configured model are loaded, never a URI or a path",
            )  # fmt: skip
        try:
            loaded = self._load(name, version)
        except IntegrityError as error:
            return None, self._refuse(key, "integrity", str(error))
        except Exception as error:  # a broken or missing version must not stop the others
            # The reason is shown by /ready and /rollouts: a registry URL in it goes without its password.
            why = without_passwords(str(error))
            return None, self._refuse(key, "load", f"{name} v{version} failed to load: {type(error).__name__}: {why}")
        self._failed.pop(key, None)
        self._loaded[key] = loaded
        logger.info("loaded model=%s version=%s", name, version)
        return loaded, None

    def _load(self, name: str, version: str) -> LoadedModel:
        folder = tempfile.TemporaryDirectory(prefix=f"domainflow-serving-{name}-v{version}-")
        try:
            path = verified_model_folder(self.tracking_uri, name, version, Path(folder.name))
            model = mlflow.pyfunc.load_model(str(path))
        except BaseException:
            folder.cleanup()
            raise
        return LoadedModel(name, version, model, folder)

    def _refuse(self, key: tuple[str, str], kind: str, reason: str) -> str:
        logger.error("refused model=%s version=%s: %s", *key, reason)
        self._failed[key] = (reason, time.monotonic())
        self.on_failure(*key, kind)
        return reason

    def keep_only(self, keys: set[tuple[str, str]]) -> None:
        """Forget the versions no table serves any more (a request holding an old table keeps its model)."""
        for key in [k for k in self._loaded if k not in keys]:
            self._loaded.pop(key).folder.cleanup()
            logger.info("unloaded model=%s version=%s", *key)

    def close(self) -> None:
        self.keep_only(set())


class ModelRefresher:
    """Builds every domain's serving table from the database and the registry, and swaps them in."""

    def __init__(
        self,
        config: PipelineConfig,
        engine: Engine,
        cache: ModelCache,
        on_swap: Callable[[Mapping[str, ServingTable]], None] = lambda tables: None,
    ):
        self.config, self.engine, self.cache, self.on_swap = config, engine, cache, on_swap
        self.client = MlflowClient(cache.tracking_uri)
        # Replaced whole on each refresh; readers take the reference once per request.
        self.tables: Mapping[str, ServingTable] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def champion_version(self, name: str) -> str | None:
        """The `champion` alias's version; None when there is none (an unreachable registry raises)."""
        try:
            return str(self.client.get_model_version_by_alias(name, CHAMPION).version)
        except MlflowException as error:
            if absent_in_registry(error):
                return None
            raise

    def refresh(self) -> Mapping[str, ServingTable]:
        with self._lock:
            rollouts = {r.domain: r for r in read_rollouts(self.engine)}
            tables = dict(self.tables)
            for domain in self.config.domains.values:
                try:
                    tables[domain] = self._table(domain, rollouts.get(domain))
                except Exception:
                    # The registry is unreachable: whatever served this domain keeps serving.
                    logger.exception("refresh of %s failed; its current models keep serving", domain)
            for domain, table in tables.items():
                before = self.tables.get(domain)
                if before is None or _summary(before) != _summary(table):
                    logger.info("serving domain=%s %s", domain, _summary(table))
            self.tables = tables
            self.cache.keep_only({(m.name, m.version) for t in tables.values() for m in _models_of(t)})
            self.on_swap(tables)
            return tables

    def table_for(self, domain: str, rollout: Rollout | None) -> ServingTable:
        """The table `rollout` makes, its models loaded: the answer to an admin change a later one already replaced."""
        with self._lock:
            return self._table(domain, rollout)

    def _table(self, domain: str, rollout: Rollout | None) -> ServingTable:
        name = self.config.registered_model_name(domain)
        foreign = None
        if rollout is not None and rollout.model_name != name:
            # Written by hand or by another config: its versions are not this server's to load.
            foreign = (f"the rollout of {domain} (revision {rollout.revision}) names model {rollout.model_name!r}, "
                       f"not the configured {name}: ignored, the `{CHAMPION}` alias serves")  # fmt: skip
            rollout = None
        champion = None
        if rollout is None or rollout.version_of(CHAMPION_ARM) is None:
            champion = self.champion_version(name)
        if rollout is not None:
            arms, source, revision, reason = rollout.arms, "rollout", rollout.revision, rollout.reason
        elif champion is not None:
            arms, source, revision, reason = (Arm(CHAMPION_ARM, champion, 1.0),), "champion alias", None, ""
        else:
            arms, source, revision, reason = (), "none", None, ""
        models: dict[str, LoadedModel] = {}
        problems: dict[str, str] = {}
        for arm in arms:
            loaded, problem = self.cache.get(name, arm.version)
            if loaded is not None:
                models[arm.variant] = loaded
            else:
                problems[arm.variant] = problem or "not loaded"
        fallback = None
        if CHAMPION_ARM in models:
            fallback = (CHAMPION_ARM, models[CHAMPION_ARM])
        elif champion is not None and rollout is not None:
            loaded, problem = self.cache.get(name, champion)
            if loaded is not None:
                fallback = (CHAMPION_ARM, loaded)
            else:
                problems[""] = f"the champion alias ({name} v{champion}) cannot serve: {problem}"
        if not arms:
            problems[""] = f"no rollout and no `{CHAMPION}` alias on {name}: register a version and promote it"
        elif fallback is None and "" not in problems:
            problems[""] = f"the {CHAMPION_ARM} arm is not loaded, so {domain} is not ready"
        if foreign:
            problems[""] = f"{foreign}; {problems['']}" if "" in problems else foreign
        return ServingTable(domain, name, source, revision, reason, arms, models, fallback, problems)

    def start(self, interval: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(interval,), name="model-refresher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
            except Exception:  # the database is unreachable: keep the tables, try again next tick
                logger.exception("refreshing the serving tables failed; the current models keep serving")


def _models_of(table: ServingTable) -> list[LoadedModel]:
    return [*table.models.values(), *([table.fallback[1]] if table.fallback else [])]


def _summary(table: ServingTable) -> str:
    arms = ", ".join(
        f"{a.variant}=v{a.version}@{a.weight:g}{'' if a.variant in table.models else ' (refused)'}" for a in table.arms
    )
    return f"source={table.source} revision={table.revision} arms=[{arms}] ready={table.ready}"

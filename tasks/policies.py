"""What every task adapter shares: the cache policy, the retry policies, and who a flow run acts as."""

from __future__ import annotations

from prefect.cache_policies import TASK_SOURCE, CacheKeyFnPolicy
from prefect.runtime import flow_run

from domainflow.config import DatasetSchema, PipelineConfig
from domainflow.data.split import TimeSplit
from domainflow.hashing import stable_digest
from domainflow.tracking import code_version


def _content_key(context, parameters: dict) -> str:
    return stable_digest({name: _as_trained_on(value) for name, value in parameters.items()}, code_version())


def _as_trained_on(value):
    """What a training stage reads of a value. A split: its windows, not the held-out rows after them (only
    replayed), so one more month of data after the test window retrains nothing. A dataset schema, or the
    whole config: not where the source lives (its content is keyed by its fingerprint upstream), and the
    whole config without `scale` either (see PipelineConfig.config_hash)."""
    if isinstance(value, TimeSplit):
        return ("TimeSplit", value.train, value.validation, value.test, value.bounds)
    if isinstance(value, DatasetSchema):
        return value.model_copy(update={"source": ""})
    if isinstance(value, PipelineConfig):
        return ("PipelineConfig", value.config_hash())
    return value


# Keyed on the inputs' content, the task's own source and the library's code
# version: a change to the data, the config, the adapter or the library re-runs
# the stage. Prefect's INPUTS policy is not used because it hashes DataFrames by
# pickling them, which differs between a computed frame and a cached one.
CACHED_STAGE = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_content_key)


def _preparation_key(context, parameters: dict) -> str:
    config = parameters["config"]
    return stable_digest(parameters["source_fingerprint"], parameters["domain"], config.domains.column, config.data,
                         config.validation, config.split, parameters["quarantine_root"], code_version())  # fmt: skip


# A domain's prepared data is fixed by the source's content (its fingerprint: the frame is that source's
# columns, which config.data names) and the config sections the preparation reads. Training settings are
# not among them, so a new epoch count reuses the prepared data, and the large frame is never hashed.
PREPARED_DATA = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_preparation_key)


def _training_key(context, parameters: dict) -> str:
    return stable_digest(parameters["domain"], parameters["trained_on"], parameters["config"].model_hash(),
                         code_version())  # fmt: skip


# What a domain's training is: its rows (DomainData.trained_on) and the settings that shape its model
# (config.model_hash: not the gate, the canary or where the data lives), with the code.
SAME_TRAINING = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_training_key)


def _audited_training_key(context, parameters: dict) -> str:
    data, config = parameters["data"], parameters["config"]
    return stable_digest(data.domain, data.trained_on, config.model_hash(), parameters["settings"].database_url,
                         code_version())  # fmt: skip


# A training's rows in the audit log: once per training (as SAME_TRAINING keys it) and audit log. A rerun
# that trains nothing is answered from the cache and writes none; a training that runs writes them, a new
# home's (a new database) included.
AUDITED_TRAINING = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_audited_training_key)


def _judgement_key(context, parameters: dict) -> str:
    data, config = parameters["data"], parameters["config"]
    return stable_digest(data.domain, data.trained_on, config.config_hash(),
                         parameters["settings"].tracking_uri, code_version())  # fmt: skip


# A candidate is judged once for its inputs (the domain's training windows, the whole config, the
# registry, the code): a rerun with the same inputs reports the verdict it got then, not a new judgement
# against a champion that the first run's own loop put in place since. A changed input (a gate
# threshold, a training setting, new rows in the windows) is judged again. The training's record in
# MLflow (its run, its version, the verdict's aliases) is kept under the same key: a rerun reads it
# from the cache, unless the flow found the version gone from the registry and refreshes it.
JUDGED_ONCE = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_judgement_key)

IO_RETRY_DELAYS = [2, 10]


def retry_unless_user_error(task, task_run, state) -> bool:
    """Retry storage and network hiccups; a ValueError is the user's input, which a retry won't fix."""
    try:
        state.result()
    except ValueError:
        return False
    except BaseException:
        return True
    return True


# Every task that talks to MLflow, the state database, a data source or the server: two retries
# a few seconds apart for a hiccup, none for a mistake in the user's input.
RETRY_IO = {"retries": 2, "retry_delay_seconds": IO_RETRY_DELAYS, "retry_condition_fn": retry_unless_user_error}
# The canary: one retry, which resumes the controller's persisted state where it stopped.
RESUME_ONCE = {"retries": 1, "retry_delay_seconds": 5, "retry_condition_fn": retry_unless_user_error}


def flow_run_actor() -> str:
    """Who the audit log names for a change a flow run made."""
    return f"prefect-flow-run/{flow_run.id or 'local'}"

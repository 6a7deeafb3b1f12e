"""Cache and retry policies shared by the task adapters."""

from __future__ import annotations

from prefect.cache_policies import TASK_SOURCE, CacheKeyFnPolicy

from domainflow.hashing import stable_digest
from domainflow.tracking import code_version


def _content_key(context, parameters: dict) -> str:
    return stable_digest(parameters, code_version())


# Keyed on the inputs' content, the task's own source and the library's code
# version: a change to the data, the config, the adapter or the library re-runs
# the stage. Prefect's INPUTS policy is not used because it hashes DataFrames by
# pickling them, which differs between a computed frame and a cached one.
CACHED_STAGE = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_content_key)

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

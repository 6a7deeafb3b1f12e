"""Content digests that stay the same across processes, for cache keys.

Prefect's INPUTS policy hashes arguments by pickling them, and a DataFrame
read back from a persisted result pickles to different bytes than the one
first computed: every downstream cache would miss. Here frames and arrays
are hashed by their values, containers by their parts, and anything else
with joblib.hash (which hashes numpy buffers by content).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import joblib
import numpy as np
import pandas as pd
from pydantic import BaseModel


def _feed(digest, value: Any) -> None:
    if value is None or isinstance(value, (str, int, float, bool)):
        digest.update(f"{type(value).__name__}:{value!r}".encode())
    elif isinstance(value, pd.DataFrame):
        digest.update(b"frame:" + ",".join(f"{c}:{t}" for c, t in value.dtypes.items()).encode())
        digest.update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
    elif isinstance(value, pd.Series):
        digest.update(f"series:{value.name}:{value.dtype}".encode())
        digest.update(pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes())
    elif isinstance(value, np.ndarray) and value.dtype == object:
        # The buffer of an object array holds pointers: hash the values it points to.
        digest.update(f"objects:{value.shape}".encode())
        _feed(digest, value.ravel().tolist())
    elif isinstance(value, np.ndarray):
        digest.update(f"array:{value.dtype}:{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, BaseModel):
        digest.update(f"{type(value).__qualname__}:{value.model_dump_json()}".encode())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(type(value).__qualname__.encode())
        for item in dataclasses.fields(value):
            digest.update(item.name.encode())
            _feed(digest, getattr(value, item.name))
    elif isinstance(value, dict):
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}:{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif type(value).__module__.startswith("torch") and hasattr(value, "numpy"):
        _feed(digest, value.detach().cpu().numpy())
    elif type(value).__module__.startswith("sklearn.") and hasattr(value, "__dict__"):
        # A fitted estimator (and the tree predictors, binners and encoders inside one) by its
        # attributes: joblib.hash of a HistGradientBoostingClassifier changes across a pickle round
        # trip (its empty arrays), so every stage keyed on a model read back from the cache missed.
        digest.update(f"object:{type(value).__module__}.{type(value).__qualname__}".encode())
        _feed(digest, vars(value))
    else:
        digest.update(f"{type(value).__qualname__}:{joblib.hash(value)}".encode())


def stable_digest(*values: Any) -> str:
    digest = hashlib.sha256()
    for value in values:
        _feed(digest, value)
    return digest.hexdigest()[:32]

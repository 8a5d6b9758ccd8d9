"""Configuration: the ``CFG`` object and how a setting is chosen.

A setting is taken from the first of these that has it: an explicit argument to ``pinnacle()``,
``CFG`` set in code, the environment (``PINNACLEDB_*``), the config file (``pinnacledb.toml`` in
the working directory, else ``[tool.pinnacledb]`` in its ``pyproject.toml``), the built-in
default. The environment and the file are read when ``pinnacle()`` is called, never at import,
and a bad key or value there is a :class:`~pinnacle_protocols.errors.ConfigError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from attrs import define, field, frozen

__all__ = [
    "CFG",
    "DEFAULT_ARTIFACT_URI",
    "DEFAULT_COMPUTE_URI",
    "DEFAULT_DATABACKEND_URI",
    "DEFAULT_GC_GRACE_SECONDS",
    "DEFAULT_METADATA_URI",
    "DEFAULT_TRIGGER_JOB_ROWS",
    "DEFAULT_VECTOR_COMPACT_FRACTION",
    "DEFAULT_VECTOR_COMPACT_MIN_ROWS",
    "DEFAULT_VECTOR_FOLD_MIN_ROWS",
    "DEFAULT_VECTOR_MAX_DELTAS",
    "ENV_PREFIX",
    "Config",
    "ResolvedConfig",
    "Setting",
    "check_fraction",
    "check_grace_seconds",
    "check_positive_int",
    "check_trigger_job_rows",
    "resolve_config",
]

ENV_PREFIX: Final = "PINNACLEDB_"
#: Where everything lives when nothing is configured (relative to the working directory).
DEFAULT_DATABACKEND_URI: Final = "duckdb://.pinnacledb/data.duckdb"
DEFAULT_METADATA_URI: Final = "sqlite://.pinnacledb/metadata.db"
DEFAULT_ARTIFACT_URI: Final = "filesystem://.pinnacledb/artifacts/"
#: Where jobs run when nothing is configured: in the caller's process.
DEFAULT_COMPUTE_URI: Final = "local://"
#: Unreferenced artifacts younger than this are never garbage collected (seconds).
DEFAULT_GC_GRACE_SECONDS: Final = 3600.0
#: A write changing at least this many rows runs its listener work as a job on an
#: out-of-process compute backend (smaller writes compute in the writing process).
DEFAULT_TRIGGER_JOB_ROWS: Final = 10_000
#: Vector index upkeep (:mod:`pinnacledb.vector_search`): a write that finds this many change
#: files after the base build stores a new base instead (compaction).
DEFAULT_VECTOR_MAX_DELTAS: Final = 100
#: ...or when the change files touch more than max(this many ids, this fraction of the index)...
DEFAULT_VECTOR_COMPACT_MIN_ROWS: Final = 10_000
DEFAULT_VECTOR_COMPACT_FRACTION: Final = 0.1
#: ...where an approximate (two-tier) engine, whose compaction folds its pending segment into
#: the graph, uses this many ids instead of ``vector_compact_min_rows``.
DEFAULT_VECTOR_FOLD_MIN_ROWS: Final = 10_000

#: Names of the settings, in the order they are shown.
_KEYS: Final = (
    "databackend",
    "metadata",
    "artifact_store",
    "trust_serializers",
    "gc_grace_seconds",
    "compute",
    "trigger_job_rows",
    "vector_max_deltas",
    "vector_compact_min_rows",
    "vector_compact_fraction",
    "vector_fold_min_rows",
)
#: The positive-int settings -> what they count (for error messages).
_COUNTS: Final = {
    "trigger_job_rows": "rows",
    "vector_max_deltas": "change files",
    "vector_compact_min_rows": "ids",
    "vector_fold_min_rows": "ids",
}


def _config_error(message: str) -> Exception:
    from pinnacle_protocols.errors import ConfigError

    return ConfigError(message)


def _check_uri(_inst: object, attribute: Any, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise _config_error(
            f"CFG.{attribute.name} must be a URI string or None, got {type(value).__name__}"
        )


def _uri_repr(value: object) -> str:
    """A URI setting in a repr: password and secret query options masked."""
    from pinnacle_protocols.uri import redacted_repr

    return redacted_repr(value)


def _to_trust(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset(p.strip() for p in value.split(",") if p.strip())
    if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise _config_error(
        "CFG.trust_serializers must be a set of serializer names such as {'pickle'}, or None"
    )


def check_grace_seconds(value: object, where: str = "gc_grace_seconds") -> float:
    """Return ``value`` as a float if it is a finite number of seconds >= 0.

    The one rule for every place a grace period comes from: ``pinnacle()``, ``CFG``, the
    environment, the config file, ``db.gc()`` and ``pinnacle gc --grace``.

    Raises:
        ConfigError: naming ``where`` and what is expected.
    """
    import math

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            number = math.inf
        if math.isfinite(number) and number >= 0:
            return number
    raise _config_error(
        f"{where} must be a finite number of seconds >= 0 (e.g. 3600), got {value!r:.60}"
    )


def check_trigger_job_rows(value: object, where: str = "trigger_job_rows") -> int:
    """Return ``value`` if it is an int >= 1 (a row count), else raise ConfigError naming
    ``where``."""
    return check_positive_int(value, where, "rows")


def check_positive_int(value: object, where: str, what: str) -> int:
    """Return ``value`` if it is an int >= 1 (a number of ``what``), else raise ConfigError
    naming ``where`` and the value.

    The one rule of every count setting (``trigger_job_rows``, ``vector_max_deltas``,
    ``vector_compact_min_rows``, ``vector_fold_min_rows``) wherever it comes from.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise _config_error(
        f"{where} must be an int >= 1 (a number of {what}), got {value!r:.60}; "
        "set a whole number >= 1, or unset it for the built-in default"
    )


def check_fraction(value: object, where: str = "vector_compact_fraction") -> float:
    """Return ``value`` as a float if it is a number in (0, 1] (a share of an index), else
    raise ConfigError naming ``where`` and the value."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1:
        return float(value)
    raise _config_error(
        f"{where} must be a number in (0, 1] (a fraction of the index's vectors), "
        f"got {value!r:.60}; set e.g. 0.1 for 10%, or unset it for the built-in default"
    )


def _check_count(_inst: object, attribute: Any, value: object) -> None:
    if value is not None:
        check_positive_int(value, f"CFG.{attribute.name}", _COUNTS[attribute.name])


def _check_fraction(_inst: object, attribute: Any, value: object) -> None:
    if value is not None:
        check_fraction(value, f"CFG.{attribute.name}")


def _check_grace(_inst: object, _attribute: Any, value: object) -> None:
    if value is not None:
        check_grace_seconds(value, "CFG.gc_grace_seconds")


@define(kw_only=True)
class Config:
    """Settings that ``pinnacle()`` reads; ``None`` means "not set here, look further".

    ``repr(CFG)`` masks the password and secret query options of every URI setting.

    Attributes:
        databackend: URI of the user's data, e.g. ``"postgres://localhost/db"``.
        metadata: URI of the metadata store (component records, lineage, jobs).
        artifact_store: URI of the artifact store (weights, large values).
        trust_serializers: Names of code-executing serializers (``pickle``, ``dill``,
            ``cloudpickle``) whose artifacts may be loaded. Only trust stores you control.
        gc_grace_seconds: Unreferenced artifacts younger than this survive ``gc``.
        compute: URI of the compute backend jobs run on (``local://``,
            ``processes://?workers=4``, ``dask://scheduler:8786``).
        trigger_job_rows: On a compute backend other than ``local://``, an insert or update
            changing at least this many rows (per written batch) runs its listener work as a
            partitioned job there, and waits for it; smaller writes compute in the writing
            process (default :data:`DEFAULT_TRIGGER_JOB_ROWS`).
        vector_max_deltas: A vector index write that finds this many change files after the
            base build stores the whole engine as a new base instead (compaction; default
            :data:`DEFAULT_VECTOR_MAX_DELTAS`, see :mod:`pinnacledb.vector_search`).
        vector_compact_min_rows: A write also compacts when the change files touch more than
            ``max(vector_compact_min_rows, vector_compact_fraction * count)`` ids (default
            :data:`DEFAULT_VECTOR_COMPACT_MIN_ROWS`).
        vector_compact_fraction: That fraction of the index's vectors, in (0, 1] (default
            :data:`DEFAULT_VECTOR_COMPACT_FRACTION`).
        vector_fold_min_rows: What ``vector_compact_min_rows`` is for an approximate engine
            (faiss, usearch, hnswlib), whose compaction folds its pending segment into the
            graph (default :data:`DEFAULT_VECTOR_FOLD_MIN_ROWS`).
    """

    databackend: str | None = field(default=None, validator=_check_uri, repr=_uri_repr)
    metadata: str | None = field(default=None, validator=_check_uri, repr=_uri_repr)
    artifact_store: str | None = field(default=None, validator=_check_uri, repr=_uri_repr)
    trust_serializers: frozenset[str] | None = field(default=None, converter=_to_trust)
    gc_grace_seconds: float | None = field(default=None, validator=_check_grace)
    compute: str | None = field(default=None, validator=_check_uri)
    trigger_job_rows: int | None = field(default=None, validator=_check_count)
    vector_max_deltas: int | None = field(default=None, validator=_check_count)
    vector_compact_min_rows: int | None = field(default=None, validator=_check_count)
    vector_compact_fraction: float | None = field(default=None, validator=_check_fraction)
    vector_fold_min_rows: int | None = field(default=None, validator=_check_count)

    def reset(self) -> None:
        """Unset every setting (useful in tests and notebooks)."""
        for name in _KEYS:
            setattr(self, name, None)


#: The process-wide settings set in code. ``pinnacle()`` reads it and never writes it.
CFG: Final = Config()


@frozen(kw_only=True)
class Setting:
    """A chosen value and where it came from (for ``pinnacle info`` and error messages).

    Its ``repr`` masks the password and secret query options of a URI value.
    """

    value: Any = field(repr=_uri_repr)
    source: str


@frozen(kw_only=True)
class ResolvedConfig:
    """Every setting after precedence was applied; ``None`` values were set nowhere."""

    databackend: Setting
    metadata: Setting
    artifact_store: Setting
    trust_serializers: Setting
    gc_grace_seconds: Setting
    compute: Setting
    trigger_job_rows: Setting = Setting(value=None, source="default")
    vector_max_deltas: Setting = Setting(value=None, source="default")
    vector_compact_min_rows: Setting = Setting(value=None, source="default")
    vector_compact_fraction: Setting = Setting(value=None, source="default")
    vector_fold_min_rows: Setting = Setting(value=None, source="default")

    def sources(self) -> dict[str, str]:
        """Setting name -> where its value came from."""
        return {k: getattr(self, k).source for k in _KEYS}


_ENV_NAMES: Final = {ENV_PREFIX + k.upper(): k for k in _KEYS}
_FILE_NAMES: Final = ("pinnacledb.toml", "pyproject.toml")


def _parse_value(key: str, value: object, where: str) -> Any:
    """Validate one setting read from the environment or a file; raise ConfigError naming it."""
    if key in ("databackend", "metadata", "artifact_store", "compute"):
        if not isinstance(value, str) or not value.strip():
            raise _config_error(
                f"{where}: {key!r} must be a non-empty URI string, got {type(value).__name__}"
            )
        return value.strip()
    if key == "trust_serializers":
        if isinstance(value, str):
            return frozenset(p.strip() for p in value.split(",") if p.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return frozenset(value)
        raise _config_error(
            f"{where}: {key!r} must be a list of serializer names (or a comma-separated string), "
            f"got {type(value).__name__}"
        )
    if key == "gc_grace_seconds":
        number: object = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = value
        try:
            return check_grace_seconds(number, f"{where}: {key!r}")
        except ValueError:
            raise _config_error(
                f"{where}: {key!r} must be a finite number of seconds >= 0, got {value!r}"
            ) from None
    if key in _COUNTS:
        rows: object = value
        if isinstance(value, str):
            try:
                rows = int(value.strip())
            except ValueError:
                rows = value
        return check_positive_int(rows, f"{where}: {key!r}", _COUNTS[key])
    if key == "vector_compact_fraction":
        share: object = value
        if isinstance(value, str):
            try:
                share = float(value.strip())
            except ValueError:
                share = value
        return check_fraction(share, f"{where}: {key!r}")
    raise AssertionError(key)  # pragma: no cover - keys are checked before


def _read_env(environ: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = _ENV_NAMES.get(name)
        if key is None:
            known = ", ".join(sorted(_ENV_NAMES))
            raise _config_error(
                f"unknown environment variable {name}: pinnacledb reads only {known}; "
                "unset it or fix its name"
            )
        found[key] = _parse_value(key, value, f"environment variable {name}")
    return found


def _read_file(directory: Path) -> tuple[dict[str, Any], str | None]:
    import tomllib

    for filename in _FILE_NAMES:
        path = directory / filename
        if not path.is_file():
            continue
        try:
            with path.open("rb") as fh:
                doc = tomllib.load(fh)
        except (tomllib.TOMLDecodeError, OSError) as exc:
            from pinnacle_protocols.errors import ConfigError

            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if filename == "pyproject.toml":
            table = doc.get("tool", {}).get("pinnacledb")
            if table is None:
                return {}, None
            where = f"{path} [tool.pinnacledb]"
        else:
            table = doc
            where = str(path)
        if not isinstance(table, dict):
            raise _config_error(f"{where}: expected a table of settings")
        found: dict[str, Any] = {}
        for key, value in table.items():
            if key not in _KEYS:
                raise _config_error(
                    f"{where}: unknown key {key!r}; known keys are {', '.join(_KEYS)}"
                )
            found[key] = _parse_value(key, value, f"{where}: key")
        return found, where
    return {}, None


def resolve_config(
    explicit: Mapping[str, Any],
    *,
    cfg: Config = CFG,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ResolvedConfig:
    """Apply the precedence rules to every setting.

    Args:
        explicit: Values passed to ``pinnacle()`` (``None`` entries are ignored).
        cfg: The in-code settings (``CFG``); read, never written.
        environ: The environment (default ``os.environ``).
        cwd: Where to look for the config file (default the working directory).

    Raises:
        ConfigError: an unknown ``PINNACLEDB_*`` variable or file key, or a value of the wrong
            type; the message names the variable or key.
    """
    env = _read_env(os.environ if environ is None else environ)
    file_values, file_where = _read_file(Path.cwd() if cwd is None else cwd)
    chosen: dict[str, Setting] = {}
    for key in _KEYS:
        if explicit.get(key) is not None:
            chosen[key] = Setting(value=explicit[key], source="argument")
        elif getattr(cfg, key) is not None:
            chosen[key] = Setting(value=getattr(cfg, key), source=f"CFG.{key}")
        elif key in env:
            chosen[key] = Setting(value=env[key], source=f"environment {ENV_PREFIX}{key.upper()}")
        elif key in file_values:
            chosen[key] = Setting(value=file_values[key], source=f"config file {file_where}")
        else:
            chosen[key] = Setting(value=None, source="default")
    return ResolvedConfig(**chosen)

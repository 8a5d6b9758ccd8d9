"""The ``pinnacle`` command: info, doctor, show, migrate, gc, copy and demo.

Every command takes ``--databackend``, ``--metadata`` and ``--artifact-store`` (else the usual
configuration applies). Passwords never appear in the output: URIs are shown redacted, and
everything written is scrubbed of the configured secrets as a second line of defence.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from pinnacledb.base.datalayer import Datalayer

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace, TextIO, TextIO], int]


def _store_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    sup = argparse.SUPPRESS
    common.add_argument("--databackend", metavar="URI", default=sup, help="databackend URI")
    common.add_argument("--metadata", metavar="URI", default=sup, help="metadata store URI")
    common.add_argument(
        "--artifact-store",
        dest="artifact_store",
        metavar="URI",
        default=sup,
        help="artifact store URI",
    )
    common.add_argument(
        "--trust-serializer",
        dest="trust",
        action="append",
        metavar="NAME",
        default=sup,
        help="allow loading artifacts of this code-executing serializer (e.g. pickle)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=sup,
        help="log progress and show (redacted) tracebacks",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pinnacle``."""
    from pinnacledb import __version__

    common = _store_options()
    parser = argparse.ArgumentParser(
        prog="pinnacle",
        description="pinnacledb: models, artifacts and lineage next to your database.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"pinnacledb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "info", parents=[common], help="show the three stores (redacted) and versions"
    )
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "doctor",
        parents=[common],
        help="connect to each store, check its schema and run a write/read/delete probe",
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("show", parents=[common], help="list components, identifiers or versions")
    p.add_argument("type_id", nargs="?", metavar="TYPE")
    p.add_argument("identifier", nargs="?", metavar="ID")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("migrate", parents=[common], help="bring the metadata store schema to head")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("gc", parents=[common], help="delete unreferenced artifacts")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.add_argument(
        "--grace",
        type=float,
        metavar="SECONDS",
        default=None,
        help="keep unreferenced artifacts younger than this (default: configuration, 3600)",
    )
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser(
        "copy",
        parents=[common],
        help="copy components, artifacts, lineage, jobs (and tables) to another deployment",
    )
    for side in ("from", "to"):
        p.add_argument(
            f"--{side}",
            dest=f"{side}_databackend",
            metavar="URI",
            default=None,
            required=side == "to",
            help=f"{side} deployment: databackend URI",
        )
        p.add_argument(
            f"--{side}-metadata",
            dest=f"{side}_metadata",
            metavar="URI",
            default=None,
            help=f"{side} deployment: metadata store URI",
        )
        p.add_argument(
            f"--{side}-artifact-store",
            dest=f"{side}_artifact_store",
            metavar="URI",
            default=None,
            help=f"{side} deployment: artifact store URI",
        )
    p.add_argument("--tables", metavar="T1,T2", default=None, help="also copy these tables")
    p.add_argument("--all-tables", action="store_true", help="also copy every table")
    p.add_argument("--batch-size", type=int, default=10_000, metavar="N", help="rows per insert")
    p.add_argument("--workers", type=int, default=4, metavar="N", help="artifact uploads in flight")
    p.add_argument("--dry-run", action="store_true", help="only print the plan")
    p.set_defaults(func=cmd_copy)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="insert Iris, fit and apply a numpy model, load it in a fresh process, predict",
    )
    p.set_defaults(func=cmd_demo)
    return parser


def _opt(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def _db(args: argparse.Namespace, **defaults: str) -> Datalayer:
    """The Datalayer the options and configuration name; ``defaults`` fill unset stores."""
    from pinnacledb._wiring import pinnacle

    def given(name: str) -> Any:
        value = _opt(args, name)
        return defaults.get(name) if value is None else value  # "" is an (invalid) URI

    trust = _opt(args, "trust")
    return pinnacle(
        given("databackend"),
        metadata_store=given("metadata"),
        artifact_store=given("artifact_store"),
        trust_serializers=set(trust) if trust else None,
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("pinnacledb", "pinnacle-protocols"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _store_line(db: Datalayer, role: str) -> tuple[str, str]:
    slot = db.slots[role]
    entry = slot.entry
    origin = f"{entry.distribution} {entry.version}" if entry is not None else "object"
    source = db.config.sources()[role] if db.config is not None else "argument"
    return str(slot.uri), f"{slot.class_path} ({origin}); from {source}"


ROLES = ("databackend", "metadata", "artifact_store")
#: Where ``pinnacle demo`` keeps its data, in order, when nothing is configured and the
#: embedded default's databackend (DuckDB, pinnacle-ibis) is not installed.
DEMO_FALLBACKS = ("sqlalchemy+sqlite://.pinnacledb/data.db", "memory://")
_OUR_LOGGERS = (
    "pinnacledb",
    "pinnacle_protocols",
    "pinnacle_sql",
    "pinnacle_fs",
    "pinnacle_ibis",
    "pinnacle_mongo",
)


# ---------------------------------------------------------------------- commands
def cmd_info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle info``: stores, where each setting came from, versions, serializers."""
    from pinnacledb._registry import StoreRegistry

    db = _db(args)
    versions = _versions()
    out.write(
        f"pinnacledb {versions['pinnacledb']} (pinnacle-protocols "
        f"{versions['pinnacle-protocols']}), Python {sys.version.split()[0]}\n\n"
    )
    for role in ROLES:
        uri, detail = _store_line(db, role)
        out.write(f"{role:<15} {uri}\n{'':<15} {detail}\n")
    trusted = ", ".join(sorted(db.trusted_serializers)) or "none"
    names = ", ".join(db.serializers.names())
    out.write(f"\nserializers     {names} (trusted code-executing: {trusted})\n")
    out.write(f"gc grace        {db.gc_grace_seconds:g} s\n\ninstalled schemes\n")
    reg = StoreRegistry.from_entry_points()
    for role in ROLES:
        out.write(f"  {role:<15} {', '.join(reg.schemes(role))}\n")  # type: ignore[arg-type]
    return 0


def _backend_connect(db: Datalayer, token: str) -> str:
    return f"connected, {len(db.databackend.list_tables())} user tables"


def _backend_probe(db: Datalayer, token: str) -> str:
    from pinnacle_protocols.records import DType, Field, Schema

    backend = db.databackend
    name = f"pinnacle_doctor_probe_{token[:12]}"
    backend.create_table(
        name, Schema(fields=(Field(name="id", dtype=DType.INT), Field(name="v", dtype=DType.STR)))
    )
    try:
        backend.insert(name, [{"id": 1, "v": token}])
        rows = backend.select(name, {"id": 1})
        if [r.get("v") for r in rows] != [token]:
            raise RuntimeError(f"wrote {token!r}, read back {rows!r}")
    finally:
        backend.drop_table(name)
    return "create/insert/select/drop ok"


def _metadata_revision(db: Datalayer, token: str) -> str:
    rev = db.metadata.schema_revision()
    if not rev.up_to_date:
        raise RuntimeError(
            f"schema revision {rev.current} is not head {rev.head}: run `pinnacle migrate`"
        )
    return f"schema at head ({rev.head})"


def _metadata_probe(db: Datalayer, token: str) -> str:
    md = db.metadata
    key = "pinnacle.doctor.probe"
    md.set_metadata(key, token)
    got = md.get_metadata(key)
    md.set_metadata(key, None)
    if got != token:
        raise RuntimeError(f"wrote {token!r}, read back {got!r}")
    return "set/get/clear ok"


def _artifact_probe(db: Datalayer, token: str) -> str:
    store = db.artifact_store
    data = f"pinnacle doctor probe {token}".encode()
    ref = store.put(data)
    try:
        if store.get(ref) != data:
            raise RuntimeError("read back different bytes")
    finally:
        store.delete(ref)
    if store.exists(ref):
        raise RuntimeError("the probe blob still exists after delete")
    return "put/get/delete ok"


#: (role, check name, function, checks skipped when it fails)
_DOCTOR_CHECKS: tuple[tuple[str, str, Callable[[Datalayer, str], str], bool], ...] = (
    ("databackend", "connect", _backend_connect, True),
    ("databackend", "probe", _backend_probe, False),
    ("metadata", "schema", _metadata_revision, True),
    ("metadata", "probe", _metadata_probe, False),
    ("artifact_store", "probe", _artifact_probe, False),
)


def cmd_doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle doctor``: connect, schema revision, write/read/delete probes; 1 on failure."""
    db = _db(args)
    token = uuid.uuid4().hex
    failures = 0
    skip: set[str] = set()
    for role, what, fn, gate in _DOCTOR_CHECKS:
        uri = db.slots[role].uri
        if role in skip:
            out.write(f"skip  {role:<15} {uri}  {what}: an earlier check failed\n")
            continue
        try:
            detail = fn(db, token)
        except Exception as exc:
            failures += 1
            out.write(f"FAIL  {role:<15} {uri}  {what}: {_describe(exc)}\n")
            if gate:
                skip.add(role)
            continue
        out.write(f"ok    {role:<15} {uri}  {what}: {detail}\n")
    try:
        db.close()
    except Exception as exc:
        out.write(f"warning: closing the stores failed: {_describe(exc)}\n")
    if failures:
        out.write(f"\n{failures} check(s) failed\n")
        return 1
    out.write("\nall checks passed\n")
    return 0


def cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle show [TYPE [ID]]``."""
    db = _db(args)
    if args.type_id is None:
        keys = db.show()
        if not keys:
            out.write(f"no components in {db.slots['metadata'].uri}\n")
        for key in keys:
            versions = db.show(key.type_id, key.identifier)
            out.write(f"{key.type_id:<12} {key.identifier:<30} versions {versions}\n")
    elif args.identifier is None:
        for ident in db.show(args.type_id):
            out.write(f"{ident}\n")
    else:
        for v in db.show(args.type_id, args.identifier):
            rec = db.get_record(args.type_id, args.identifier, v)
            arts = ", ".join(f"{n}={r.sha256[:12]} ({r.size} B)" for n, r in rec.artifacts.items())
            created = rec.created_at.isoformat() if rec.created_at else "?"
            out.write(f"v{v:<4} {created}  {arts or 'no artifacts'}\n")
    db.close()
    return 0


def cmd_migrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle migrate``."""
    db = _db(args)
    md = db.metadata
    before = md.schema_revision()
    md.migrate()
    after = md.schema_revision()
    out.write(f"{md.uri}: schema {before.current} -> {after.current} (head {after.head})\n")
    db.close()
    return 0


def cmd_gc(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle gc [--dry-run] [--grace SECONDS]``."""
    from pinnacledb.gc import TextProgress

    db = _db(args)
    report = db.gc(dry_run=args.dry_run, grace_seconds=args.grace, progress=TextProgress(err))
    uri = db.slots["artifact_store"].uri
    verb = "would delete" if report.dry_run else "deleted"
    shown = report.deletable if report.dry_run else report.deleted
    for ref in shown:
        out.write(f"{verb} {ref.sha256} ({ref.size} B)\n")
    out.write(
        f"{uri}: {report.scanned} artifacts, {report.referenced} referenced, "
        f"{len(report.young)} unreferenced but within the grace period, {verb} {len(shown)} "
        f"({sum(r.size for r in shown)} B)\n"
    )
    if report.blocked_by:
        out.write(
            f"deleted nothing: {len(report.blocked_by)} apply/insert in progress "
            f"({', '.join(report.blocked_by)}); run gc again later\n"
        )
    db.close()
    return 0


def cmd_copy(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle copy --from SRC --to DST [--tables T1,T2 | --all-tables] [--dry-run]``."""
    from pinnacledb._wiring import pinnacle
    from pinnacledb.copy import CopyConflict, copy_deployment
    from pinnacledb.gc import TextProgress

    src = pinnacle(
        args.from_databackend or _opt(args, "databackend"),
        metadata_store=args.from_metadata or _opt(args, "metadata"),
        artifact_store=args.from_artifact_store or _opt(args, "artifact_store"),
    )
    dst = pinnacle(
        args.to_databackend,
        metadata_store=args.to_metadata,
        artifact_store=args.to_artifact_store,
    )
    tables = [t for t in (args.tables or "").split(",") if t.strip()]
    try:
        report = copy_deployment(
            src,
            dst,
            tables=[t.strip() for t in tables],
            all_tables=args.all_tables,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            progress=TextProgress(err),
            workers=args.workers,
        )
    except CopyConflict as exc:
        err.write(f"error: {exc}\n")
        return 1
    finally:
        src.close()
        dst.close()
    if report.dry_run:
        out.write(report.plan.describe() + "\n")
        return 1 if report.plan.conflicts else 0
    rows = ", ".join(f"{t}: {n}" for t, n in report.rows_copied.items())
    out.write(
        f"copied {report.versions_copied} component versions, {report.artifacts_copied} "
        f"artifacts ({report.bytes_copied} B), {report.jobs_copied} jobs"
        + (f", rows ({rows})" if rows else "")
        + f" to {' | '.join(report.plan.destination)}\n"
    )
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle demo``.

    With nothing configured and the embedded default's databackend (DuckDB, from
    pinnacle-ibis) not installed, the demo still runs, on the first databackend that is
    installed of :data:`DEMO_FALLBACKS`: pinnacle-sql's SQLite databackend
    (``sqlalchemy+sqlite://.pinnacledb/data.db``, e.g. with only pinnacle-sql + pinnacle-fs),
    else ``memory://`` for the run only. Metadata and artifacts go where the configuration says
    or to the embedded default's SQLite file and directory, and a note says so before anything
    is written.
    """
    from pinnacle_protocols.errors import UnknownSchemeError
    from pinnacledb._config import (
        DEFAULT_ARTIFACT_URI,
        DEFAULT_DATABACKEND_URI,
        DEFAULT_METADATA_URI,
        resolve_config,
    )
    from pinnacledb._demo import run_demo

    try:
        db = _db(args)
    except UnknownSchemeError as missing:
        resolved = resolve_config(
            {
                "databackend": _opt(args, "databackend"),
                "metadata": _opt(args, "metadata"),
                "artifact_store": _opt(args, "artifact_store"),
            }
        )
        if resolved.databackend.value is not None:
            raise  # a configured databackend is missing: say what to install
        fallback: dict[str, str] = {}
        if resolved.metadata.value is None:
            fallback["metadata"] = DEFAULT_METADATA_URI
        if resolved.artifact_store.value is None:
            fallback["artifact_store"] = DEFAULT_ARTIFACT_URI
        for data_uri in DEMO_FALLBACKS:
            try:
                db = _db(args, databackend=data_uri, **fallback)
            except UnknownSchemeError:
                continue
            break
        else:
            raise missing from None
        missing_note = (
            f"note: no databackend is configured and the embedded default's "
            f"({DEFAULT_DATABACKEND_URI}) is not installed (pip install 'pinnacle-ibis[duckdb]', "
            "or 'pinnacledb[embedded]'), so "
        )
        if data_uri == "memory://":
            out.write(
                missing_note + "this demo keeps its table data in memory:// for this run only "
                "(it is gone when the demo ends; the fresh-process step runs in this process). "
                "Model records and jobs persist in the metadata store and weights in the "
                "artifact store below. Pass --databackend URI for persistent data.\n\n"
            )
        else:
            out.write(
                missing_note + f"this demo keeps its table data on SQLite at {data_uri} "
                "(pinnacle-sql's databackend). Pass --databackend URI for another database.\n\n"
            )
    return run_demo(db, out)


# ---------------------------------------------------------------------- main
def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__ or exc.__context__
    seen = 0
    while cause is not None and seen < 5:
        text += f" (caused by {type(cause).__name__}: {cause})"
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return text


def _candidate_uris(args: argparse.Namespace) -> list[str | None]:
    from pinnacledb._config import CFG, ENV_PREFIX

    uris: list[str | None] = [_opt(args, k) for k in ROLES]
    uris += [_opt(args, f"{side}_{k}") for side in ("from", "to") for k in ROLES]
    uris += [v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)]
    uris += [CFG.databackend, CFG.metadata, CFG.artifact_store]
    try:
        from pathlib import Path

        from pinnacledb._config import _read_file

        values, _ = _read_file(Path.cwd())
        uris += [v for v in values.values() if isinstance(v, str)]
    except Exception:  # noqa: S110 - a broken file is reported by the command itself
        pass
    return uris


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``pinnacle``; return the exit status (0 ok, 1 failure, 2 configuration error)."""
    from pinnacledb._secrets import Scrubber, ScrubbingFilter, ScrubbingStream, secrets_of

    parser = build_parser()
    args = parser.parse_args(argv)
    scrub = Scrubber(secrets_of(_candidate_uris(args)))
    out: Any = ScrubbingStream(sys.stdout, scrub)
    err: Any = ScrubbingStream(sys.stderr, scrub)
    verbose = bool(_opt(args, "verbose"))
    handler = logging.StreamHandler(err)
    handler.addFilter(ScrubbingFilter(scrub))
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.WARNING)
    ours = [logging.getLogger(name) for name in _OUR_LOGGERS]
    old_levels = [lg.level for lg in ours]
    for lg in ours:
        lg.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        func: Command = args.func
        return func(args, out, err)
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130
    except Exception as exc:
        from pinnacle_protocols.errors import ConfigError

        if verbose:
            err.write("".join(traceback.format_exception(exc)))
        err.write(f"error: {_describe(exc)}\n")
        return 2 if isinstance(exc, ConfigError) else 1
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for lg, level in zip(ours, old_levels, strict=True):
            lg.setLevel(level)
        out.flush()
        err.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``pinnacle`` command: info, doctor, show, jobs, migrate, gc, copy, listen, ui and demo.

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
        "--compute", metavar="URI", default=sup, help="compute backend URI (where jobs run)"
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
        "--relocate-artifacts",
        dest="relocate_artifacts",
        action="store_true",
        default=sup,
        help="the artifacts were moved: record --artifact-store as this deployment's artifact "
        "store (replacing the location recorded in the metadata store)",
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
    p.add_argument(
        "--deep",
        action="store_true",
        help="also parse every component record and hash every referenced artifact "
        "(reads every blob; reports missing, truncated and corrupt ones)",
    )
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("show", parents=[common], help="list components, identifiers or versions")
    p.add_argument("type_id", nargs="?", metavar="TYPE")
    p.add_argument("identifier", nargs="?", metavar="ID")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "jobs",
        parents=[common],
        help="list jobs (status, progress, runner); --watch follows running jobs",
    )
    p.add_argument(
        "--status",
        choices=["pending", "queued", "running", "success", "failed", "cancelled"],
        default=None,
        help="only jobs of this status",
    )
    p.add_argument("--component", metavar="ID", default=None, help="only jobs of this component")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N jobs (50)")
    p.add_argument(
        "--watch",
        action="store_true",
        help="follow queued and running jobs until they end (a progress bar each on a "
        "terminal, a plain line per change otherwise)",
    )
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help=argparse.SUPPRESS)
    p.add_argument(
        "--rm",
        dest="rm",
        action="store_true",
        help="remove finished jobs (with --status and/or --older-than)",
    )
    p.add_argument(
        "--older-than",
        dest="older_than",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --rm: only jobs created more than this long ago",
    )
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("migrate", parents=[common], help="bring the metadata store schema to head")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("gc", parents=[common], help="delete unreferenced artifacts")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.add_argument(
        "--grace",
        type=_grace_seconds,
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
        "listen",
        parents=[common],
        help="bring listener outputs up to date (db.catch_up), once or following by polling",
    )
    p.add_argument("listener", nargs="?", metavar="LISTENER", help="one listener (default all)")
    p.add_argument("--follow", action="store_true", help="keep catching up, polling")
    p.add_argument(
        "--interval", type=float, default=5.0, metavar="SECONDS", help="polling interval"
    )
    p.add_argument(
        "--rounds", type=int, default=None, metavar="N", help="with --follow: stop after N rounds"
    )
    p.add_argument(
        "--no-stale",
        action="store_true",
        help="only look for missing outputs (anti-join), not for stale input hashes",
    )
    p.set_defaults(func=cmd_listen)

    _add_ui_parser(sub, common)
    _add_index_and_demo_parsers(sub, common)
    _describe_subcommands(sub)
    return parser


def _add_ui_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """``pinnacle ui``'s options."""
    p = sub.add_parser(
        "ui",
        parents=[common],
        help="serve a read-only web page (and JSON API) of the deployment; needs "
        "pip install 'pinnacledb[ui]'",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.add_argument(
        "--allow-remote",
        dest="allow_remote",
        action="store_true",
        help="allow a non-loopback --host; needs a token (PINNACLE_UI_TOKEN or --token-file) "
        "that every request must carry",
    )
    p.add_argument(
        "--token-file",
        dest="token_file",
        metavar="PATH",
        default=None,
        help="read the access token from this file (else PINNACLE_UI_TOKEN)",
    )
    p.add_argument("--poll", type=float, default=2.0, metavar="S", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_ui)


def _add_index_and_demo_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "index", parents=[common], help="vector indexes: rebuild a stale or missing index"
    )
    p.add_argument("action", choices=["rebuild"], help="what to do")
    p.add_argument("index", metavar="ID", help="the vector index identifier")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="insert Iris, fit and apply a numpy model, load it in a fresh process, predict",
    )
    p.add_argument(
        "--search",
        action="store_true",
        help="instead: similarity search over help-desk texts (a vector index, no download)",
    )
    p.set_defaults(func=cmd_demo)


#: What ``pinnacle COMMAND --help`` says under the usage line (the one-line help follows).
DESCRIPTIONS = {
    "info": "Show the three stores (passwords redacted), where each setting came from (argument, "
    "CFG, environment, config file or default), package versions, serializers and the "
    "installed URI schemes. Problems are reported on stderr after what can be shown.",
    "doctor": "Build and connect each store, check the metadata schema revision against head "
    "and run a write/read/delete probe on each. Exit status 1 when a check fails.",
    "show": "Without arguments: every component and its versions. With TYPE: its identifiers. "
    "With TYPE and ID: each version, when it was created and its artifacts. An unknown type "
    "or identifier exits with status 1.",
    "migrate": "Bring the metadata store's schema to the head revision (safe to run again).",
    "gc": "Delete artifacts no component version references, keeping those younger than the "
    "grace period and anything an apply in progress may still reference.",
    "copy": "Copy components (every version), their artifacts, lineage and jobs, and optionally "
    "tables, from one deployment to another. Resumable; --dry-run prints the plan.",
    "index": "rebuild ID: build the vector index again from its listener's outputs table and "
    "store it (repairs a missing, unreadable or outdated stored build; db.catch_up() does the "
    "same for every index).",
    "ui": "Serve a read-only web page of the deployment: components and their versions, "
    "lineage drawn as a graph, jobs with live progress, tables with their first rows, and the "
    "same data as a JSON API (/api/openapi.json). Binds to loopback; a non-loopback --host "
    "needs --allow-remote and a token (PINNACLE_UI_TOKEN or --token-file), which every "
    "request must then carry (Authorization: Bearer TOKEN, or open /?token=TOKEN once).",
    "demo": "Create the Iris table, fit a numpy least-squares model, apply it, load it in a fresh "
    "process and predict into an outputs table, then show what lives where. With --search: "
    "embed help-desk texts with a numpy hashing encoder (no download), index them and search "
    "by text, with and without a filter.",
}


def _describe_subcommands(sub: Any) -> None:
    """Give every subcommand's ``--help`` a description (its one-line help if none is written)."""
    helps = {action.dest: action.help for action in sub._choices_actions}
    for name, parser in sub.choices.items():
        if parser.description is None:
            text = DESCRIPTIONS.get(name) or helps.get(name) or ""
            parser.description = text[:1].upper() + text[1:]


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
        compute=given("compute"),
        trust_serializers=set(trust) if trust else None,
        relocate_artifacts=bool(_opt(args, "relocate_artifacts")),
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
    slot = db.compute_slot if role == "compute" else db.slots[role]
    entry = slot.entry
    origin = f"{entry.distribution} {entry.version}" if entry is not None else "object"
    source = db.config.sources()[role] if db.config is not None else "argument"
    return str(slot.uri), f"{slot.class_path} ({origin}); from {source}"


ROLES = ("databackend", "metadata", "artifact_store")
#: ``pinnacle info`` also shows where jobs run.
INFO_ROLES = (*ROLES, "compute")
#: Where ``pinnacle demo`` keeps its data when nothing is configured and neither the
#: embedded default's databackend (DuckDB, pinnacle-ibis) nor its SQLite fallback
#: (pinnacle-sql, which ``pinnacle()`` itself takes) is installed.
DEMO_FALLBACKS = ("memory://",)
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
    """``pinnacle info``: stores, where each setting came from, versions, serializers.

    A configuration that cannot be resolved (an unknown scheme, a broken config file, a store
    package that fails to load) is reported on stderr after everything else that can be shown
    (versions, the settings and where they came from, installed schemes); the exit status is
    then 2 for a configuration error, else 1.
    """
    from pinnacle_protocols.errors import ConfigError
    from pinnacledb._registry import StoreRegistry
    from pinnacledb.serializers import SerializerRegistry

    versions = _versions()
    out.write(
        f"pinnacledb {versions['pinnacledb']} (pinnacle-protocols "
        f"{versions['pinnacle-protocols']}), Python {sys.version.split()[0]}\n\n"
    )
    problems: list[BaseException] = []
    db: Datalayer | None = None
    try:
        db = _db(args)
    except Exception as exc:
        problems.append(exc)
        out.write("stores          cannot be resolved (the error is on stderr)\n")
        _configured_settings(args, out)
    if db is not None:
        for role in INFO_ROLES:
            uri, detail = _store_line(db, role)
            out.write(f"{role:<15} {uri}\n{'':<15} {detail}\n")
        trusted = ", ".join(sorted(db.trusted_serializers)) or "none"
        names = ", ".join(db.serializers.names())
        out.write(f"\nserializers     {names} (trusted code-executing: {trusted})\n")
        out.write(f"gc grace        {db.gc_grace_seconds:g} s\n")
    else:
        names = ", ".join(SerializerRegistry().names())
        out.write(f"\nserializers     {names}\n")
    out.write("\ninstalled schemes\n")
    reg = StoreRegistry.from_entry_points()
    for role in INFO_ROLES:
        out.write(f"  {role:<15} {', '.join(reg.schemes(role))}\n")  # type: ignore[arg-type]
    if not problems:
        return 0
    for problem in problems:
        err.write(f"error: {_describe(problem)}\n")
    return 2 if any(isinstance(p, ConfigError) for p in problems) else 1


def _configured_settings(args: argparse.Namespace, out: TextIO) -> None:
    """What the options, ``CFG``, environment and config file say, before any store is built."""
    from pinnacledb._config import resolve_config

    try:
        resolved = resolve_config({role: _opt(args, role) for role in ROLES})
    except Exception:  # the same error is the reported problem
        return
    sources = resolved.sources()
    for role in ROLES:
        setting = getattr(resolved, role)
        shown = "(default rule)" if setting.value is None else _shown_uri(setting.value)
        out.write(f"{role:<15} {shown}\n{'':<15} from {sources[role]}\n")


def _shown_uri(value: Any) -> str:
    from pinnacle_protocols.errors import InvalidURIError
    from pinnacle_protocols.uri import RedactedURI

    if not isinstance(value, str):
        return f"<{type(value).__name__} object>"
    try:
        return str(RedactedURI.parse(value))
    except InvalidURIError:
        return "<invalid URI>"


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


def _deep_check(db: Datalayer, out: TextIO, err: TextIO) -> int:
    """``doctor --deep``: every record parsed, every referenced blob hashed; problems found."""
    from pinnacledb.gc import TextProgress
    from pinnacledb.verify import verify_deployment

    try:
        report = verify_deployment(db, progress=TextProgress(err))
    except Exception as exc:
        out.write(f"FAIL  deep check: {_describe(exc)}\n")
        return 1
    for p in report.problems:
        out.write(f"FAIL  {p.role:<15} {db.slots[p.role].uri}  {p.kind}: {p.subject}: {p.detail}\n")
    status = "ok   " if report.ok else "FAIL "
    out.write(
        f"{status} deep            {report.records} records parsed, {report.blobs} referenced "
        f"artifacts hashed ({report.bytes_hashed} B), {len(report.problems)} problem(s)\n"
    )
    if any(p.role == "artifact_store" for p in report.problems):
        out.write(
            "hint: re-applying the component stores a missing or truncated artifact again; a "
            "corrupt one is replaced by putting its original bytes again "
            "(db.artifact_store.put(data)), or delete it (db.artifact_store.delete(sha)) and "
            "re-apply\n"
        )
    return len(report.problems)


def cmd_doctor(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle doctor [--deep]``: connect, schema revision, probes (and the deep check);
    1 on failure."""
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
    if getattr(args, "deep", False):
        if skip & {"metadata", "artifact_store"}:
            out.write("skip  deep check: an earlier check failed\n")
        else:
            failures += _deep_check(db, out, err)
    try:
        db.close()
    except Exception as exc:
        out.write(f"warning: closing the stores failed: {_describe(exc)}\n")
    if failures:
        out.write(f"\n{failures} check(s) failed\n")
        return 1
    out.write("\nall checks passed\n")
    return 0


def cmd_jobs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle jobs [--status S] [--component ID] [--watch] [--rm [--older-than S]]``."""
    from pinnacledb.jobs._view import job_table, watch

    db = _db(args)
    try:
        if args.rm:
            if args.status is None and args.older_than is None:
                err.write(
                    "error: --rm removes every finished job only when asked: pass --status "
                    "and/or --older-than SECONDS (--older-than 0 for all)\n"
                )
                return 2
            removed = db.remove_jobs(older_than=args.older_than, status=args.status)
            out.write(f"removed {len(removed)} job(s)\n")
            return 0
        if args.watch:
            return watch(db, err, interval=args.interval, component=args.component)
        jobs = db.jobs(status=args.status, component=args.component, limit=args.limit)
        if not jobs:
            out.write(f"no jobs in {db.slots['metadata'].uri}\n")
            return 0
        out.write(job_table(jobs))
        return 0
    finally:
        db.close()


def cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle show [TYPE [ID]]``; an unknown type or identifier is an error (exit 1)."""
    db = _db(args)
    try:
        _show(db, args.type_id, args.identifier, out)
    finally:
        db.close()
    return 0


def _show(db: Datalayer, type_id: str | None, identifier: str | None, out: TextIO) -> None:
    from pinnacle_protocols.errors import ComponentNotFound
    from pinnacledb.base._artifact_home import describe_location

    where = describe_location(db.slots["metadata"].uri)
    if type_id is None:
        keys = db.show()
        if not keys:
            out.write(f"no components in {where}\n")
        for key in keys:
            versions = db.show(key.type_id, key.identifier)
            out.write(f"{_name(key.type_id):<12} {_name(key.identifier):<30} versions {versions}\n")
        return
    if identifier is None:
        idents = db.show(type_id)
        if idents:
            for ident in idents:
                out.write(f"{_name(ident)}\n")
            return
        known = db.components.type_ids()
        if type_id in known:
            out.write(f"no {type_id} components in {where}\n")
            return
        stored = sorted({k.type_id for k in db.show()})
        raise ComponentNotFound(
            f"unknown component type {type_id!r}{_did_you_mean(type_id, [*known, *stored])}: "
            f"known types: {', '.join(known)}; types stored in {where}: "
            f"{', '.join(stored) or 'none'}"
        )
    versions = db.show(type_id, identifier)
    if not versions:
        idents = db.show(type_id)
        listed = ", ".join(idents[:20]) + (", ..." if len(idents) > 20 else "")
        raise ComponentNotFound(
            f"no {type_id} {identifier!r} in {where}{_did_you_mean(identifier, idents)}; "
            + (f"{type_id} identifiers: {listed}" if idents else f"it has no {type_id} components")
            + " (pinnacle show lists every component)"
        )
    for v in versions:
        rec = db.get_record(type_id, identifier, v)
        arts = ", ".join(f"{n}={r.sha256[:12]} ({r.size} B)" for n, r in rec.artifacts.items())
        created = rec.created_at.isoformat() if rec.created_at else "?"
        out.write(f"v{v:<4} {created}  {arts or 'no artifacts'}\n")


def _name(stored: str) -> str:
    """A stored identifier as one line of output: a newline or tab in it is shown escaped, so a
    record cannot forge lines of ``pinnacle show`` (the output stream escapes the rest)."""
    return stored.replace("\n", "\\n").replace("\t", "\\t")


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    from difflib import get_close_matches

    close = get_close_matches(word, sorted(set(candidates)), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


def _grace_seconds(text: str) -> float:
    """``--grace``: a finite number of seconds >= 0 (the rule of the config file and CFG)."""
    from pinnacledb._config import check_grace_seconds

    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (e.g. 3600)"
        ) from None
    try:
        return check_grace_seconds(number, "--grace")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    if report.temp_files:
        out.write(
            f"{verb} {report.temp_files} temp file(s) left by interrupted puts (older than "
            "the grace period)\n"
        )
    if report.blocked_by:
        out.write(
            f"deleted nothing: {len(report.blocked_by)} apply/insert in progress "
            f"({', '.join(report.blocked_by)}); run gc again later\n"
        )
    db.close()
    return 0


def cmd_listen(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle listen [LISTENER] [--follow] [--interval SECONDS] [--rounds N]``."""
    import time

    if args.interval <= 0 or (args.rounds is not None and args.rounds < 1):
        from pinnacle_protocols.errors import ConfigError

        raise ConfigError("--interval must be > 0 and --rounds >= 1")
    db = _db(args)
    try:
        if args.follow:
            out.write(
                f"following listener writes by polling every {args.interval:g} s "
                "(writes through pinnacledb are handled by their own process; this catches "
                "up writes that bypassed it). Ctrl-C to stop.\n"
            )
        done = 0
        while True:
            report = db.catch_up(args.listener, stale=not args.no_stale)
            for name in report.jobs:
                out.write(
                    f"{name}: computed {report.computed[name]}, recomputed "
                    f"{report.recomputed[name]}, removed {report.removed[name]}, failed "
                    f"{report.failed[name]} (job {report.jobs[name]})\n"
                )
            if not report.jobs:
                out.write("no listeners\n")
            out.flush()
            done += 1
            if not args.follow or (args.rounds is not None and done >= args.rounds):
                return 1 if any(report.failed.values()) else 0
            time.sleep(args.interval)
    finally:
        db.close()


def cmd_index(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle index rebuild ID``."""
    db = _db(args)
    try:
        count = db.rebuild_index(args.index)
        out.write(f"vector index {args.index!r} rebuilt: {count} vectors\n")
    finally:
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
        + (f", {report.indexes_copied} vector index builds" if report.indexes_copied else "")
        + (f", rows ({rows})" if rows else "")
        + f" to {' | '.join(report.plan.destination)}\n"
    )
    return 0


#: ``pinnacle ui``: the environment variable holding the access token.
UI_TOKEN_ENV = "PINNACLE_UI_TOKEN"  # noqa: S105 - a variable name, not a secret
_UI_TOKEN_MIN = 16


def _ui_token(args: argparse.Namespace) -> str | None:
    """The access token of ``pinnacle ui`` (``--token-file``, else the environment), checked."""
    import re

    from pinnacle_protocols.errors import ConfigError

    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                token: str | None = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the token file {args.token_file!r}: {type(exc).__name__}"
            ) from None
        where = f"the token file {args.token_file!r}"
    else:
        token = os.environ.get(UI_TOKEN_ENV) or None
        where = UI_TOKEN_ENV
    if token is None:
        return None
    if len(token) < _UI_TOKEN_MIN or not re.fullmatch(r"[A-Za-z0-9._~+/=-]+", token):
        raise ConfigError(
            f"the token in {where} must be at least {_UI_TOKEN_MIN} characters of letters, "
            "digits and ._~+/=- (e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return token


def cmd_ui(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle ui [--host H] [--port P] [--allow-remote] [--token-file PATH]``."""
    from pinnacle_protocols.errors import ConfigError

    token = _ui_token(args)
    try:
        from pinnacledb.ui.app import create_app, is_loopback
    except ImportError as exc:
        raise ConfigError(
            f"pinnacle ui needs the web extra: pip install 'pinnacledb[ui]' ({exc})"
        ) from None
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 1 to 65535, got {args.port}")
    local = is_loopback(args.host)
    if not local and not args.allow_remote:
        raise ConfigError(
            f"--host {args.host} is not a loopback address: anyone who can reach it could read "
            "this deployment. Pass --allow-remote together with a token (PINNACLE_UI_TOKEN "
            "or --token-file), or bind to 127.0.0.1 and use an SSH tunnel"
        )
    if args.allow_remote and token is None:
        raise ConfigError(
            f"--allow-remote needs a token that every request must carry: set {UI_TOKEN_ENV} "
            "or pass --token-file PATH (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe())')"
        )
    if args.poll <= 0:
        raise ConfigError("--poll must be > 0 seconds")
    import uvicorn

    db = _db(args)
    try:
        app = create_app(db, token=token, check_host=local, poll_seconds=args.poll)
        config = uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level="warning",
            access_log=False,  # a first request may carry ?token=
            server_header=False,
            proxy_headers=False,
            lifespan="on",
        )
        server = uvicorn.Server(config)
        shown_host = f"[{args.host}]" if ":" in args.host else args.host
        out.write(
            f"pinnacle ui (read-only) on http://{shown_host}:{args.port}/ for\n{db!r}\n"
            + ("every request must carry the token\n" if token else "")
            + "Ctrl-C to stop.\n"
        )
        out.flush()
        server.run()
    finally:
        db.close()
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``pinnacle demo``.

    With nothing configured and the embedded default's databackend (DuckDB, from
    pinnacle-ibis) not installed, ``pinnacle()`` takes pinnacle-sql's SQLite databackend
    (``sqlalchemy+sqlite://.pinnacledb/data.db``, e.g. with only pinnacle-sql + pinnacle-fs);
    without that too, the demo keeps its data in ``memory://`` for the run only. Metadata and
    artifacts go where the configuration says or to the embedded default's SQLite file and
    directory, and a note says so before anything is written.
    """
    from pinnacle_protocols.errors import UnknownSchemeError
    from pinnacledb._config import (
        DEFAULT_ARTIFACT_URI,
        DEFAULT_DATABACKEND_URI,
        DEFAULT_METADATA_URI,
        resolve_config,
    )
    from pinnacledb._demo import run_demo
    from pinnacledb._wiring import EMBEDDED_FALLBACK_DATABACKEND, EMBEDDED_FALLBACK_SOURCE

    try:
        db = _db(args)
        if db.config is not None and db.config.databackend.source == EMBEDDED_FALLBACK_SOURCE:
            out.write(
                f"note: no databackend is configured and the embedded default's "
                f"({DEFAULT_DATABACKEND_URI}) is not installed (pip install "
                "'pinnacle-ibis[duckdb]', or 'pinnacledb[embedded]'), so this demo keeps its "
                f"table data on SQLite at {EMBEDDED_FALLBACK_DATABACKEND} (pinnacle-sql's "
                "databackend). Pass --databackend URI for another database.\n\n"
            )
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
        out.write(
            f"note: no databackend is configured and the embedded default's "
            f"({DEFAULT_DATABACKEND_URI}) is not installed (pip install 'pinnacle-ibis[duckdb]', "
            f"or 'pinnacledb[embedded]'), so this demo keeps its table data in {data_uri} for "
            "this run only (it is gone when the demo ends; the fresh-process step runs in this "
            "process). Model records and jobs persist in the metadata store and weights in the "
            "artifact store below. Pass --databackend URI for persistent data.\n\n"
        )
    if getattr(args, "search", False):
        from pinnacledb._demo_search import run_search_demo

        return run_search_demo(db, out)
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

    uris: list[str | None] = [_opt(args, k) for k in INFO_ROLES]
    uris += [_opt(args, f"{side}_{k}") for side in ("from", "to") for k in ROLES]
    uris += [v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)]
    uris += [CFG.databackend, CFG.metadata, CFG.artifact_store, CFG.compute]
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

"""The deep check behind ``pinnacle doctor --deep``: every record parsed, every blob hashed.

``pinnacle doctor`` only probes that each store answers. This reads everything the deployment
relies on: each stored component version is read back and checked for the shape the facade
needs to rebuild it, and each artifact that a record or a by-reference table row points at is
read to the end and hashed. Problems are reported, never repaired here: a damaged blob is
replaced by putting its original bytes again (re-applying the component does that for a
missing or truncated blob).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from attrs import frozen

from pinnacle_protocols.errors import ArtifactCorrupted, ArtifactNotFound
from pinnacle_protocols.records import ArtifactRef, ComponentKey

if TYPE_CHECKING:
    from pinnacledb.base.datalayer import Datalayer
    from pinnacledb.gc import Progress

__all__ = ["Problem", "VerifyReport", "verify_deployment"]

_READ: Final = 8 * 1024 * 1024


@frozen(kw_only=True)
class Problem:
    """One thing the deep check found wrong.

    Attributes:
        role: ``"metadata"`` or ``"artifact_store"``.
        kind: ``"malformed"`` (a record), ``"missing"``, ``"truncated"``, ``"wrong size"`` or
            ``"corrupt"`` (a blob whose bytes do not hash to its name).
        subject: What is wrong (a record's key, or a blob's sha256 and who references it).
        detail: The error or the sizes found.
    """

    role: str
    kind: str
    subject: str
    detail: str


@frozen(kw_only=True)
class VerifyReport:
    """What the deep check read and found.

    Attributes:
        records: Component versions read.
        blobs: Referenced blobs checked.
        bytes_hashed: Bytes read and hashed.
        problems: Everything found wrong (empty: all good).
    """

    records: int
    blobs: int
    bytes_hashed: int
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        """Whether nothing was found wrong."""
        return not self.problems


def _show(key: ComponentKey) -> str:
    return f"{key.type_id} {key.identifier!r} v{key.version}"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _record_shape(data: object, artifacts: set[str]) -> str | None:
    """Why a record's data cannot be rebuilt into a component, or None if it can."""
    if not isinstance(data, dict):
        return "data is not a mapping"
    if not isinstance(data.get("class"), str):
        return "stored class name is missing or not a string"
    if not isinstance(data.get("fields", {}), dict):
        return "stored fields are not a mapping"
    serializers = data.get("serializers") or {}
    if not isinstance(serializers, dict) or set(serializers) != artifacts:
        return "artifacts and their serializers do not match"
    return None


def _check_records(
    db: Datalayer, problems: list[Problem], progress: Progress | None
) -> tuple[int, dict[str, tuple[ArtifactRef, str]]]:
    """Read every version; return how many and the artifacts they reference (with who)."""
    md = db.metadata
    versions: list[ComponentKey] = []
    for latest in md.show_components():
        for v in md.show_versions(latest.type_id, latest.identifier):
            versions.append(
                ComponentKey(type_id=latest.type_id, identifier=latest.identifier, version=v)
            )
    wanted: dict[str, tuple[ArtifactRef, str]] = {}
    for i, key in enumerate(versions, 1):
        try:
            record = md.get_component(key.type_id, key.identifier, key.version)
        except Exception as exc:  # every way a record can fail to parse is a finding
            problems.append(
                Problem(
                    role="metadata", kind="malformed", subject=_show(key), detail=_describe(exc)
                )
            )
        else:
            why = _record_shape(record.data, set(record.artifacts))
            if why is not None:
                problems.append(
                    Problem(role="metadata", kind="malformed", subject=_show(key), detail=why)
                )
            for name, ref in record.artifacts.items():
                wanted.setdefault(ref.sha256, (ref, f"{_show(key)} artifact {name!r}"))
        if progress is not None:
            progress("records", i, len(versions))
    return len(versions), wanted


def _check_blob(
    db: Datalayer, ref: ArtifactRef, size_known: bool
) -> tuple[tuple[str, str] | None, int]:
    """((kind, detail) of what is wrong or None if it hashes right, bytes read)."""
    store = db.artifact_store
    try:
        size = store.size(ref)
    except ArtifactNotFound:
        return ("missing", "not in the artifact store"), 0
    if size_known and size != ref.size:
        kind = "truncated" if size < ref.size else "wrong size"
        return (kind, f"{size} bytes stored, {ref.size} expected"), 0
    read = 0
    try:
        with store.open(ref) as reader:
            while chunk := reader.read(_READ):
                read += len(chunk)
    except ArtifactNotFound:
        return ("missing", "deleted while being checked"), read
    except ArtifactCorrupted as exc:
        return ("corrupt", str(exc)), read
    return None, read


def verify_deployment(db: Datalayer, *, progress: Progress | None = None) -> VerifyReport:
    """Parse every component record and hash every referenced blob; report what is wrong.

    Args:
        db: The deployment.
        progress: ``progress(phase, done, total)`` with phases ``"records"`` then ``"blobs"``.
    """
    from pinnacledb.gc import _data_references

    problems: list[Problem] = []
    records, wanted = _check_records(db, problems, progress)
    for sha in sorted(_data_references(db) - set(wanted)):
        try:
            ref = ArtifactRef(sha256=sha, size=0)
        except Exception as exc:  # a table cell that is not a sha256
            problems.append(
                Problem(
                    role="artifact_store",
                    kind="malformed",
                    subject=repr(sha),
                    detail=_describe(exc),
                )
            )
            continue
        wanted[sha] = (ref, "a by-reference table row")
    hashed = 0
    items = sorted(wanted.items())
    for i, (sha, (ref, who)) in enumerate(items, 1):
        found, read = _check_blob(db, ref, size_known=who != "a by-reference table row")
        hashed += read
        if found is not None:
            kind, detail = found
            problems.append(
                Problem(
                    role="artifact_store", kind=kind, subject=f"blob {sha} ({who})", detail=detail
                )
            )
        if progress is not None:
            progress("blobs", i, len(items))
    return VerifyReport(
        records=records, blobs=len(items), bytes_hashed=hashed, problems=tuple(problems)
    )

"""Turning components into records plus artifacts (apply) and back (load).

Apply order, chosen so that a process killed at any instant leaves no record pointing at a
missing artifact:

1. apply child components (depth first), so their versions are known;
2. unstructure the record data and validate it, serialize each artifact into memory and hash
   it (nothing written yet);
3. if the latest version has the same content hash and all its artifacts exist, that version
   is the result: nothing is written (apart from re-recording lineage edges, idempotently);
4. write a journal entry (a RUNNING ``apply`` job in the metadata store naming the sha256 of
   the artifacts about to be put and the process writing them), which tells ``gc`` they are
   being claimed;
5. ``put`` each missing artifact (atomic and idempotent in every artifact store);
6. ``create_component`` (one atomic write in the metadata store) unless step 3 found it;
7. record lineage edges, mark the journal job SUCCESS.

A record is only written after every artifact it names is stored, and artifact puts are
atomic, so a crash between any two steps leaves at worst unreferenced artifacts, which
``gc`` removes after the grace period.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import logging
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, cast

import attrs

from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    ArtifactNotFound,
    ComponentNotFound,
    InvalidRecord,
    PinnacleError,
)
from pinnacle_protocols.protocols import ArtifactStore, MetadataStore
from pinnacle_protocols.records import (
    MAX_DEPTH,
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    JobRecord,
    JobStatus,
    JSONValue,
    check_depth,
)
from pinnacle_protocols.serialization import utcnow
from pinnacle_protocols.uri import redact
from pinnacledb.base._gcfence import wait_while_deleting
from pinnacledb.base._owner import OWNER_KEY, current_owner

if TYPE_CHECKING:
    import cattrs
from pinnacledb.components._base import (
    Component,
    ComponentRegistry,
    artifact_fields,
    data_fields,
)
from pinnacledb.serializers import SerializerRegistry

__all__ = [
    "FIELD_MAX_DEPTH",
    "JOURNAL_KINDS",
    "REF_KEY",
    "ComponentIO",
    "make_converter",
]

logger = logging.getLogger("pinnacledb")

#: Marks a reference to another component inside record data.
REF_KEY: Final = "__component__"
#: The deepest nesting of lists and dicts in a component field: a record's data holds each
#: field two levels deep (``data["fields"][name]``), and record data nests at most MAX_DEPTH.
FIELD_MAX_DEPTH: Final = MAX_DEPTH - 2
_FIELD_HINT = (
    f"a component field nests at most MAX_DEPTH - 2 = {MAX_DEPTH - 2} levels, as its record's data "
    "holds it 2 levels deep; flatten the value or store it as an artifact"
)
#: Job kinds that are write-ahead journal entries for artifact writes (read by gc).
JOURNAL_KINDS: Final = frozenset({"apply", "insert", "update", "vector_index"})


def _is_component_type(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Component)


def _is_union_with_component(tp: Any) -> bool:
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return False
    return any(_is_component_type(a) for a in typing.get_args(tp))


def _unstructure_ref(component: Component) -> dict[str, Any]:
    if component.version is None:
        raise InvalidRecord(
            f"{component.type_id} {component.identifier!r} is referenced but not applied"
        )
    return {
        REF_KEY: {
            "type_id": component.type_id,
            "identifier": component.identifier,
            "version": component.version,
        }
    }


def make_converter() -> cattrs.Converter:
    """The protocols converter plus hooks for component references (already loaded on read)."""
    import cattrs

    from pinnacle_protocols.serialization import converter as base_converter

    conv = base_converter.copy(forbid_extra_keys=True)

    def passthrough(value: Any, tp: Any) -> Any:
        if not isinstance(value, tp):
            raise InvalidRecord(f"expected a {tp.__name__} component, got {value!r}")
        return value

    def union(value: Any, tp: Any) -> Any:
        args = typing.get_args(tp)
        classes = tuple(a for a in args if isinstance(a, type))
        if classes and isinstance(value, classes) and not isinstance(value, bool | int | float):
            return value
        for arg in args:
            if _is_component_type(arg):
                continue
            try:
                return conv.structure(value, arg)
            except (cattrs.BaseValidationError, TypeError, ValueError):
                continue
        raise InvalidRecord(f"value {value!r} does not fit {tp}")

    conv.register_unstructure_hook_func(_is_component_type, _unstructure_ref)
    conv.register_structure_hook_func(_is_component_type, passthrough)
    conv.register_structure_hook_func(_is_union_with_component, union)
    return conv


def _jsonify(value: Any) -> Any:
    """Tuples and sets become lists (sets sorted so the content hash is stable)."""
    if isinstance(value, dict):
        return {k: _jsonify(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonify(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_jsonify(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=repr)
    return value


def _children(value: Any) -> Iterator[Component]:
    if isinstance(value, Component):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _children(v)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from _children(v)


class ComponentIO:
    """Apply and load components against a metadata store and an artifact store."""

    def __init__(
        self,
        *,
        metadata: Callable[[], MetadataStore],
        artifacts: Callable[[], ArtifactStore],
        serializers: SerializerRegistry,
        registry: ComponentRegistry,
        before_apply: Callable[[Component], None] | None = None,
    ) -> None:
        """Stores are passed as getters so they connect only when used.

        ``before_apply`` runs for every component (children included) before its artifacts are
        written, e.g. to create the table of a Table component.
        """
        self._before_apply = before_apply
        self._metadata = metadata
        self._artifacts = artifacts
        self.serializers = serializers
        self.registry = registry
        self._resolved: set[type] = set()

    @functools.cached_property
    def converter(self) -> cattrs.Converter:
        """:func:`make_converter`'s converter, built on first use (cattrs is not imported by
        commands that read no component, such as ``pinnacle show``)."""
        return make_converter()

    # ------------------------------------------------------------------ journal
    def journal_start(
        self, kind: str, args: Mapping[str, Any], shas: list[str] | None = None
    ) -> JobRecord:
        """Write a RUNNING journal job naming the artifacts about to be put (module docstring).

        ``shas=None`` records "artifacts not known yet", which makes gc delete nothing until
        :meth:`journal_artifacts` names them or the job ends. Once the job is written, waits
        while a gc run is deleting one of ``shas`` (:mod:`pinnacledb.base._gcfence`), so the
        caller's puts come after that delete.
        """
        listed: JSONValue = None if shas is None else list[JSONValue](sorted(set(shas)))
        job = JobRecord(
            job_id=f"{kind}-{uuid.uuid4().hex}",
            kind=kind,
            status=JobStatus.RUNNING,
            args={**args, "artifacts": listed, OWNER_KEY: current_owner()},
            started_at=utcnow(),
        )
        md = self._metadata()
        created = md.create_job(job)
        if shas:
            wait_while_deleting(md, shas)  # the gc fence (pinnacledb.base._gcfence)
        return created

    def journal_artifacts(self, job: JobRecord, shas: list[str]) -> JobRecord:
        """Record which artifacts the in-flight job writes (then pass the gc fence)."""
        md = self._metadata()
        updated = md.update_job(
            attrs.evolve(job, args={**job.args, "artifacts": list[JSONValue](sorted(set(shas)))})
        )
        wait_while_deleting(md, shas)
        return updated

    def journal_finish(
        self,
        job: JobRecord,
        *,
        error: BaseException | None = None,
        component: ComponentKey | None = None,
    ) -> JobRecord:
        """Mark the journal job SUCCESS (or FAILED with the redacted error)."""
        return self._metadata().update_job(
            attrs.evolve(
                job,
                status=JobStatus.FAILED if error is not None else JobStatus.SUCCESS,
                error=None if error is None else redact(f"{type(error).__name__}: {error}"),
                finished_at=utcnow(),
                component=component if component is not None else job.component,
            )
        )

    # ------------------------------------------------------------------ apply
    def apply(self, component: Component) -> ComponentRecord:
        """Store ``component`` (and the components it references); return its record."""
        return self._apply(component, set())

    def _apply(self, component: Component, active: set[int]) -> ComponentRecord:
        if not isinstance(component, Component) or not attrs.has(type(component)):
            raise TypeError(f"db.apply takes a Component, got {type(component).__name__}")
        if id(component) in active:
            raise InvalidRecord(
                f"{component.type_id} {component.identifier!r} references itself (a cycle)"
            )
        if len(active) >= MAX_DEPTH:
            raise InvalidRecord(
                f"{component.type_id} {component.identifier!r}: components reference each other "
                f"more than {MAX_DEPTH} levels deep; the limit is "
                f"pinnacle_protocols.records.MAX_DEPTH = {MAX_DEPTH}"
            )
        active.add(id(component))
        try:
            cls = type(component)
            key = self.registry.register(cls)
            child_keys: list[ComponentKey] = []
            seen: set[int] = set()
            for attr in data_fields(cls):
                where = f"{component.type_id} {component.identifier!r}: field {attr.name!r}"
                # before any recursive walk; the record's data holds a field 2 levels deep
                check_depth(
                    getattr(component, attr.name), where, limit=FIELD_MAX_DEPTH, hint=_FIELD_HINT
                )
                for child in _children(getattr(component, attr.name)):
                    if id(child) not in seen:
                        seen.add(id(child))
                        child_keys.append(self._apply(child, active).key)
            record = self._build_record(component, key)
            if self._before_apply is not None:
                self._before_apply(component)
            blobs = self._serialize_artifacts(component)
            refs = {name: ref for name, (ref, _) in blobs.items()}
            record = attrs.evolve(record, artifacts=refs)
            stored = self._latest_if_same(record)
            store = self._artifacts() if blobs else None
            missing = [n for n, r in refs.items() if stored is None or not _exists(store, r)]
            job: JobRecord | None = None
            if missing:
                job = self.journal_start(
                    "apply",
                    {"type_id": component.type_id, "identifier": component.identifier},
                    [refs[n].sha256 for n in missing],
                )
            try:
                for name in missing:
                    self._put(refs[name], blobs[name][1])
                if stored is None:
                    # The check above saves the puts of an unchanged component; this one is
                    # atomic with the allocation, so racing applies of identical content
                    # (several processes) share one version.
                    stored = self._metadata().create_component(record, reuse_unchanged=True)
                for child_key in child_keys:  # idempotent: also repairs edges a crash lost
                    self._metadata().create_parent_child(stored.key, child_key)
            except Exception as exc:
                if job is not None:
                    with contextlib.suppress(Exception):  # bookkeeping; the error is what matters
                        self.journal_finish(job, error=exc)
                raise
            if job is not None:
                self.journal_finish(job, component=stored.key)
            component.version = stored.version
            logger.info(
                "applied %s %r v%s (%d artifacts)",
                stored.type_id,
                stored.identifier,
                stored.version,
                len(stored.artifacts),
            )
            return stored
        finally:
            active.discard(id(component))

    def _build_record(self, component: Component, key: str) -> ComponentRecord:
        cls = type(component)
        self._resolve_types(cls)
        fields: dict[str, Any] = {}
        for attr in data_fields(cls):
            try:
                fields[attr.name] = _jsonify(
                    self.converter.unstructure(getattr(component, attr.name))
                )
            except PinnacleError:
                raise
            except Exception as exc:
                raise InvalidRecord(
                    f"{component.type_id} {component.identifier!r}: field {attr.name!r} cannot "
                    f"be stored as JSON ({type(exc).__name__}: {exc}); declare it with "
                    "artifact(serializer=...) to store it in the artifact store"
                ) from exc
        specs = artifact_fields(cls)
        serializers = {
            n: specs[n].serializer_for(component)
            for n in specs
            if getattr(component, n) is not None
        }
        for ser in serializers.values():
            self.serializers.get(ser)  # unknown or not installed: fail before writing anything
        # Refuse now what db.load would refuse whatever the reader trusts (a method a data-only
        # artifact could not be loaded with), rather than store a component nobody can load.
        cls.verify_record(
            {a.name: getattr(component, a.name) for a in data_fields(cls)},
            code_artifacts=frozenset(
                n for n, ser in serializers.items() if self.serializers.get(ser).executes_code
            ),
            shown=f"{component.type_id} {component.identifier!r}",
        )
        try:
            return ComponentRecord(
                type_id=component.type_id,
                identifier=component.identifier,
                data={"class": key, "fields": fields, "serializers": dict(serializers)},
            )
        except InvalidRecord as exc:
            hint = (
                ". Fields that are not JSON data must be declared with artifact(serializer=...)"
                if "not JSON data" in str(exc)
                else ""
            )
            raise InvalidRecord(
                f"{component.type_id} {component.identifier!r}: {exc}{hint}"
            ) from exc

    def _serialize_artifacts(
        self, component: Component
    ) -> dict[str, tuple[ArtifactRef, io.BytesIO]]:
        """Serialize every artifact field and hash it locally (nothing is written yet)."""
        specs = artifact_fields(type(component))
        out: dict[str, tuple[ArtifactRef, io.BytesIO]] = {}
        for name, spec in specs.items():
            value = getattr(component, name)
            if value is None:
                continue
            buf = _HashingBuffer()
            self.serializers.dump(spec.serializer_for(component), value, buf)
            ref = buf.ref()
            buf.seek(0)
            out[name] = (ref, buf)
        return out

    def _put(self, expected: ArtifactRef, data: io.BytesIO) -> None:
        ref = self._artifacts().put(data)
        if ref != expected:
            raise ArtifactCorrupted(
                f"{self._artifacts().uri} stored {ref} for bytes that hash to {expected}; the "
                "artifact store is not content-addressed correctly"
            )

    def _latest_if_same(self, record: ComponentRecord) -> ComponentRecord | None:
        """The latest stored version if it has exactly this content, else None."""
        try:
            latest = self._metadata().get_component(record.type_id, record.identifier)
        except ComponentNotFound:
            return None
        return latest if latest.content_hash == record.content_hash else None

    def _resolve_types(self, cls: type[Component]) -> None:
        if cls not in self._resolved:
            # A class defined inside a function may name types its module cannot see; its
            # fields are then read back as stored (JSON values, components already resolved).
            with contextlib.suppress(NameError, TypeError):
                attrs.resolve_types(cls)
            self._resolved.add(cls)

    # ------------------------------------------------------------------ load
    def load(self, type_id: str, identifier: str, version: int | None = None) -> Component:
        """Rebuild a component: trust check, verified artifact bytes, then deserialization."""
        record = self._metadata().get_component(type_id, identifier, version)
        return self.from_record(record, {})

    def from_record(
        self, record: ComponentRecord, cache: dict[ComponentKey, Component]
    ) -> Component:
        """Rebuild the component stored as ``record`` (children loaded through ``cache``)."""
        key = record.key
        if key in cache:
            return cache[key]
        data = dict(record.data)
        name = data.get("class", record.type_id)
        if not isinstance(name, str):
            raise InvalidRecord(f"{_show(key)}: stored class name is not a string")
        cls = self.registry.resolve(name)
        if cls.type_id != record.type_id:
            raise InvalidRecord(
                f"{_show(key)}: class {name!r} is a {cls.type_id!r}, not a {record.type_id!r}"
            )
        self._resolve_types(cls)
        serializers = self._stored_serializers(cls, record)
        stored_fields = data.get("fields") or {}
        if not isinstance(stored_fields, dict):
            raise InvalidRecord(f"{_show(key)}: stored fields are not a mapping")
        known = {a.name: a for a in data_fields(cls)}
        extra = sorted(set(stored_fields) - set(known))
        if extra:
            raise InvalidRecord(
                f"{_show(key)}: the stored record has fields {extra} that "
                f"{cls.__qualname__} does not declare (was the class changed?)"
            )
        kwargs: dict[str, Any] = {}
        for fname, raw in stored_fields.items():
            value = self._resolve_refs(raw, cache)
            ftype = known[fname].type
            if ftype is None or isinstance(ftype, str):
                kwargs[fname] = value
                continue
            try:
                kwargs[fname] = self.converter.structure(value, cast(Any, ftype))
            except PinnacleError:
                raise
            except Exception as exc:
                raise InvalidRecord(
                    f"{_show(key)}: field {fname!r} does not fit {known[fname].type}: {exc}"
                ) from exc
        self._check_serializers(cls, key, kwargs, serializers)
        # The class refuses stored values that would choose code (Model.predict_method)
        # before an artifact is read; an object loaded with a trusted code-executing
        # serializer already trusts the record's writer.
        code_artifacts = frozenset(
            n for n, ser in serializers.items() if self.serializers.get(ser).executes_code
        )
        cls.verify_record(kwargs, code_artifacts=code_artifacts, shown=_show(key))
        store = self._artifacts() if record.artifacts else None
        for art_name, ref in record.artifacts.items():
            assert store is not None
            blob = store.get(ref)  # raises ArtifactCorrupted / ArtifactNotFound: verified first
            kwargs[art_name] = self.serializers.loads(
                serializers[art_name], blob, what=f"artifact {art_name!r} of {_show(key)}"
            )
            del blob
        component = cls(identifier=record.identifier, **kwargs)
        component.version = record.version
        cache[key] = component
        return component

    def _stored_serializers(self, cls: type[Component], record: ComponentRecord) -> dict[str, str]:
        """The record's artifact -> serializer names, checked before a single byte is read.

        Every artifact must be an artifact field of ``cls`` (else a data field could be passed
        in as an artifact, unchecked), every serializer a name, and code-executing serializers
        must be trusted.
        """
        key = record.key
        stored = record.data.get("serializers") or {}
        if not isinstance(stored, dict) or set(stored) != set(record.artifacts):
            raise InvalidRecord(f"{_show(key)}: artifacts and their serializers do not match")
        undeclared = sorted(set(record.artifacts) - set(artifact_fields(cls)))
        if undeclared:
            raise InvalidRecord(
                f"{_show(key)}: the stored record has artifacts {undeclared} that "
                f"{cls.__qualname__} does not declare as artifact fields; refusing to load it"
            )
        out: dict[str, str] = {}
        for art_name, ser in stored.items():
            if not isinstance(ser, str):
                raise InvalidRecord(f"{_show(key)}: serializer of {art_name!r} is not a name")
            self.serializers.check_trusted(ser, f"artifact {art_name!r} of {_show(key)}")
            out[art_name] = ser
        return out

    @staticmethod
    def _check_serializers(
        component_cls: type[Component],
        key: ComponentKey,
        fields: Mapping[str, Any],
        stored: Mapping[str, str],
    ) -> None:
        """Each artifact is read with the serializer its class declares, not any the record names.

        A fixed ``artifact(serializer=...)`` must match; an ``artifact(serializer_field=...)``
        must match the stored value of that field (or its default).
        """
        cls = component_cls
        for name, spec in artifact_fields(cls).items():
            if name not in stored:
                continue
            if spec.serializer is not None:
                expected = spec.serializer
            else:
                assert spec.serializer_field is not None
                attr = attrs.fields_dict(cls)[spec.serializer_field]
                expected = fields.get(spec.serializer_field, attr.default)
            if stored[name] != expected:
                raise InvalidRecord(
                    f"{_show(key)}: artifact {name!r} is recorded with serializer "
                    f"{stored[name]!r}, but {cls.__qualname__} declares {expected!r} for it; "
                    "refusing to load it"
                )

    def _resolve_refs(self, value: Any, cache: dict[ComponentKey, Component]) -> Any:
        if isinstance(value, dict):
            if set(value) == {REF_KEY} and isinstance(value[REF_KEY], dict):
                ref = value[REF_KEY]
                try:
                    child_key = ComponentKey(
                        type_id=ref["type_id"], identifier=ref["identifier"], version=ref["version"]
                    )
                except (KeyError, TypeError) as exc:
                    raise InvalidRecord(f"malformed component reference {ref!r}") from exc
                if child_key in cache:
                    return cache[child_key]
                child = self._metadata().get_component(
                    child_key.type_id, child_key.identifier, child_key.version
                )
                return self.from_record(child, cache)
            return {k: self._resolve_refs(v, cache) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve_refs(v, cache) for v in value]
        return value


class _HashingBuffer(io.BytesIO):
    """An in-memory buffer that hashes what is written while it is still in the CPU cache.

    A serializer that seeks back and overwrites makes the running hash useless; the digest is
    then computed over the final bytes instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self._hasher = hashlib.sha256()
        self._end = 0
        self._sequential = True

    def write(self, data: Any) -> int:
        if self.tell() != self._end:
            self._sequential = False
        written = super().write(data)
        if self._sequential:
            self._hasher.update(data)
        self._end = max(self._end, self.tell())
        return written

    def ref(self) -> ArtifactRef:
        """The sha256 and size of everything written."""
        if self._sequential:
            return ArtifactRef(sha256=self._hasher.hexdigest(), size=self._end)
        view = self.getbuffer()
        try:
            return ArtifactRef(sha256=hashlib.sha256(view).hexdigest(), size=view.nbytes)
        finally:
            view.release()


def _exists(store: ArtifactStore | None, ref: ArtifactRef) -> bool:
    """Whether ``ref`` is stored at its full size (one metadata lookup, like exists()).

    A truncated blob counts as missing, so re-applying the component puts it again (and the
    put replaces it). Flipped bytes of the right size need ``pinnacle doctor --deep`` to find.
    """
    if store is None:
        return False
    try:
        return store.size(ref) == ref.size
    except ArtifactNotFound:
        return False


def _show(key: ComponentKey) -> str:
    return f"{key.type_id} {key.identifier!r} v{key.version}"

"""The Component base class, the ``artifact()`` field helper and the component class registry."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Final

import attrs
from attrs import define, field, frozen

from pinnacle_protocols.errors import ConfigError, InvalidRecord

__all__ = [
    "ARTIFACT_METADATA_KEY",
    "ArtifactSpec",
    "Component",
    "ComponentRegistry",
    "UnknownComponentClass",
    "artifact",
    "artifact_fields",
    "data_fields",
    "registry_key",
]

ARTIFACT_METADATA_KEY: Final = "pinnacledb.artifact"
COMPONENTS_GROUP: Final = "pinnacle.components"


class UnknownComponentClass(ConfigError, LookupError):
    """A stored component names a class that no registry entry provides."""


@frozen(kw_only=True)
class ArtifactSpec:
    """How an artifact field is serialized.

    Attributes:
        serializer: A fixed serializer name, e.g. ``"numpy"``.
        serializer_field: Or the name of another (string) field of the component that holds
            the serializer name, so each instance can choose (``Model.serializer``).
    """

    serializer: str | None = None
    serializer_field: str | None = None

    def serializer_for(self, component: object) -> str:
        """The serializer name to use for this field of ``component``."""
        if self.serializer_field is not None:
            name = getattr(component, self.serializer_field)
            if not isinstance(name, str):
                raise InvalidRecord(f"{self.serializer_field} must name a serializer")
            return name
        assert self.serializer is not None
        return self.serializer


def artifact(
    *,
    serializer: str | None = None,
    serializer_field: str | None = None,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """Declare an attrs field whose value is stored in the artifact store, not in the record.

    Args:
        serializer: Serializer name (``"numpy"``, ``"json"``, ``"safetensors"``, ``"pickle"``).
        serializer_field: Instead of a fixed name, the field holding the serializer name.
        default: Default value (a ``None`` default is stored as "no artifact").
        factory: Default factory.

    Artifact fields are excluded from ``==`` (arrays do not compare to a bool); the content
    hash of the stored record covers them.
    """
    if (serializer is None) == (serializer_field is None):
        raise TypeError("artifact() takes exactly one of serializer= or serializer_field=")
    spec = ArtifactSpec(serializer=serializer, serializer_field=serializer_field)
    if factory is not None:
        return field(factory=factory, eq=False, metadata={ARTIFACT_METADATA_KEY: spec})
    return field(default=default, eq=False, metadata={ARTIFACT_METADATA_KEY: spec})


def _check_identifier(_inst: object, _attr: object, value: str) -> None:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidRecord(f"identifier must be a non-empty string without NUL, got {value!r}")


@define(kw_only=True)
class Component:
    """Base class of everything ``db.apply`` stores: an attrs class with a kind and a name.

    Subclasses are ``@define(kw_only=True)`` classes that set ``type_id`` (the kind shown by
    ``db.show``, e.g. ``"model"``). A subclass of a concrete component sets its own
    ``component_name`` (the key under which ``db.load`` finds the class; defaults to
    ``type_id``). Fields declared with :func:`artifact` go to the artifact store; every other
    field must be JSON data (or other components, which become lineage) and goes into the
    record. ``version`` is set by ``db.apply`` and ``db.load``.
    """

    type_id: ClassVar[str] = "component"
    component_name: ClassVar[str | None] = None

    identifier: str = field(validator=_check_identifier)
    version: int | None = field(default=None, eq=False)

    @classmethod
    def verify_record(
        cls, fields: Mapping[str, Any], *, code_artifacts: frozenset[str], shown: str
    ) -> None:
        """Refuse stored values that would choose code to run, before any artifact is read.

        ``db.load`` calls it with the record's structured data fields. A subclass whose fields
        name code (a method to call, ...) checks them here against what the class declares;
        see :meth:`pinnacledb.components.Model.verify_record`. The base class accepts all.

        Args:
            fields: The stored data fields (absent fields take the class default).
            code_artifacts: Artifact fields that will be loaded with a code-executing
                serializer the Datalayer trusts: their writer is already trusted to run code.
            shown: The component as shown in messages (``model 'm' v1``).
        """


def _is_attrs(cls: type) -> bool:
    return attrs.has(cls)


def registry_key(cls: type[Component]) -> str:
    """The name under which ``cls`` is registered (its own ``component_name`` or ``type_id``)."""
    own = cls.__dict__.get("component_name")
    if isinstance(own, str) and own:
        return own
    if "type_id" in cls.__dict__:
        return cls.type_id
    raise ConfigError(
        f"{cls.__module__}.{cls.__qualname__} subclasses a component but sets neither its own "
        "component_name nor type_id; add `component_name: ClassVar[str] = '...'`"
    )


def artifact_fields(cls: type[Component]) -> dict[str, ArtifactSpec]:
    """Artifact fields of ``cls`` and how to serialize them."""
    return {
        a.name: a.metadata[ARTIFACT_METADATA_KEY]
        for a in attrs.fields(cls)
        if ARTIFACT_METADATA_KEY in a.metadata
    }


def data_fields(cls: type[Component]) -> list[attrs.Attribute[Any]]:
    """Fields of ``cls`` that go into the record (not identifier, version or artifacts)."""
    return [
        a
        for a in attrs.fields(cls)
        if a.init
        and a.name not in ("identifier", "version")
        and ARTIFACT_METADATA_KEY not in a.metadata
    ]


class ComponentRegistry:
    """Component classes by registry key: built-ins, entry points, and classes registered here.

    Classes are only ever found here, never from a module path stored in a database.
    """

    def __init__(self, classes: Mapping[str, type[Component]] | None = None) -> None:
        """Start from ``classes`` (default: the built-ins)."""
        if classes is None:
            from pinnacledb.components import builtin_components

            classes = {registry_key(c): c for c in builtin_components()}
        self._classes = dict(classes)
        self._entry_points_loaded = False

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._classes))

    def register(self, cls: type[Component]) -> str:
        """Register ``cls`` under its key; refuse if another class holds the key."""
        if not (isinstance(cls, type) and issubclass(cls, Component)) or not _is_attrs(cls):
            raise TypeError(f"{cls!r} is not an attrs Component subclass")
        key = registry_key(cls)
        held = self._classes.get(key)
        if held is not None and held is not cls:
            raise ConfigError(
                f"component name {key!r} is already registered to "
                f"{held.__module__}.{held.__qualname__}; give "
                f"{cls.__module__}.{cls.__qualname__} another component_name"
            )
        self._classes[key] = cls
        return key

    def resolve(self, key: str) -> type[Component]:
        """The class registered under ``key`` (entry points are read on first miss).

        Raises:
            UnknownComponentClass: nothing provides ``key``.
        """
        cls = self._classes.get(key)
        if cls is None and not self._entry_points_loaded:
            self._load_entry_points()
            cls = self._classes.get(key)
        if cls is None:
            raise UnknownComponentClass(
                f"no component class is registered as {key!r} (known: {', '.join(self)}). "
                f"Install the package that provides it (entry point group {COMPONENTS_GROUP!r}) "
                f"or call db.register_component(YourClass) before loading"
            )
        return cls

    def type_ids(self) -> list[str]:
        """The ``type_id`` of every registered class (entry points included), sorted."""
        if not self._entry_points_loaded:
            self._load_entry_points()
        return sorted({cls.type_id for cls in self._classes.values()})

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        self._entry_points_loaded = True
        for ep in entry_points(group=COMPONENTS_GROUP):
            if ep.name in self._classes:
                continue
            try:
                cls = ep.load()
            except Exception as exc:
                raise ConfigError(
                    f"cannot load component class {ep.name!r} ({ep.value}) from entry point "
                    f"group {COMPONENTS_GROUP!r}: {type(exc).__name__}: {exc}"
                ) from exc
            if not (isinstance(cls, type) and issubclass(cls, Component)):
                raise ConfigError(f"entry point {ep.name} = {ep.value!r} is not a Component class")
            self._classes[ep.name] = cls

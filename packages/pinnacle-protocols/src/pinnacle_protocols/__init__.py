"""pinnacle-protocols: the typed contracts every pinnacledb store implements.

Importing this package loads only the standard library and attrs; cattrs is imported when
the shared ``converter`` is first used (see :mod:`pinnacle_protocols.serialization`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pinnacle_protocols.compute import (
    ComputeBackend,
    InlineComputeBackend,
    JobProgress,
    Task,
    TaskResult,
    TaskStatus,
)
from pinnacle_protocols.errors import (
    ArtifactCorrupted,
    ArtifactError,
    ArtifactNotFound,
    BackendUnavailable,
    ComponentInUse,
    ComponentNotFound,
    ConfigError,
    DropRefused,
    FilterError,
    IndexNotBuilt,
    InvalidArtifactRef,
    InvalidRecord,
    InvalidURIError,
    InvalidVector,
    JobFailed,
    JobNotFound,
    JobTimeout,
    MigrationRequired,
    NotFoundError,
    NotVectorOutputs,
    PinnacleError,
    ReadOnlyStore,
    SchemaError,
    SchemeConflictError,
    SerializationError,
    StoreFileGone,
    TableExists,
    TableNotFound,
    UnknownSchemeError,
    UnsupportedOperation,
    UntrustedMethodError,
    UntrustedSerializerError,
    VectorIndexError,
    VersionConflict,
)
from pinnacle_protocols.filters import Filter, evaluate, validate_filter
from pinnacle_protocols.protocols import (
    ArrowTableLike,
    ArtifactStore,
    DataBackend,
    MetadataStore,
    OrderBy,
    ProgressCallback,
    RefLike,
    Rows,
    StoreFactory,
    SupportsChangeToken,
    SupportsGetMany,
    SupportsMetadataSwap,
    SupportsStaleTempCleanup,
    get_many,
)
from pinnacle_protocols.records import (
    ArtifactRef,
    ComponentKey,
    ComponentRecord,
    DType,
    Field,
    JobRecord,
    JobStatus,
    JSONValue,
    Schema,
    SchemaRevision,
    validate_sha256,
)
from pinnacle_protocols.serialization import structure, unstructure, utcnow
from pinnacle_protocols.uri import RedactedURI, redact, translate_uri
from pinnacle_protocols.vectors import (
    Measure,
    MemoryVectorEngine,
    NativeVectorSearch,
    SearchResult,
    VectorEngine,
    VectorEngineType,
    VectorId,
    VectorsLike,
)

if TYPE_CHECKING:
    from pinnacle_protocols.serialization import converter

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "converter":  # built (and cattrs imported) on first use
        from pinnacle_protocols import serialization

        return serialization.converter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArrowTableLike",
    "ArtifactCorrupted",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactRef",
    "ArtifactStore",
    "BackendUnavailable",
    "ComponentInUse",
    "ComponentKey",
    "ComponentNotFound",
    "ComponentRecord",
    "ComputeBackend",
    "ConfigError",
    "DType",
    "DataBackend",
    "DropRefused",
    "Field",
    "Filter",
    "FilterError",
    "IndexNotBuilt",
    "InlineComputeBackend",
    "InvalidArtifactRef",
    "InvalidRecord",
    "InvalidURIError",
    "InvalidVector",
    "JSONValue",
    "JobFailed",
    "JobNotFound",
    "JobProgress",
    "JobRecord",
    "JobStatus",
    "JobTimeout",
    "Measure",
    "MemoryVectorEngine",
    "MetadataStore",
    "MigrationRequired",
    "NativeVectorSearch",
    "NotFoundError",
    "NotVectorOutputs",
    "OrderBy",
    "PinnacleError",
    "ProgressCallback",
    "ReadOnlyStore",
    "RedactedURI",
    "RefLike",
    "Rows",
    "Schema",
    "SchemaError",
    "SchemaRevision",
    "SchemeConflictError",
    "SearchResult",
    "SerializationError",
    "StoreFactory",
    "StoreFileGone",
    "SupportsChangeToken",
    "SupportsGetMany",
    "SupportsMetadataSwap",
    "SupportsStaleTempCleanup",
    "TableExists",
    "TableNotFound",
    "Task",
    "TaskResult",
    "TaskStatus",
    "UnknownSchemeError",
    "UnsupportedOperation",
    "UntrustedMethodError",
    "UntrustedSerializerError",
    "VectorEngine",
    "VectorEngineType",
    "VectorId",
    "VectorIndexError",
    "VectorsLike",
    "VersionConflict",
    "__version__",
    "converter",
    "evaluate",
    "get_many",
    "redact",
    "structure",
    "translate_uri",
    "unstructure",
    "utcnow",
    "validate_filter",
    "validate_sha256",
]

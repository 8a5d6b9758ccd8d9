"""The one error hierarchy of pinnacledb.

Every error a store or the facade raises on purpose derives from :class:`PinnacleError`.
Driver errors are chained (``raise ... from exc``), never swallowed, and messages name the
store by its redacted URI and say what to do.
"""

from __future__ import annotations

__all__ = [
    "ArtifactCorrupted",
    "ArtifactError",
    "ArtifactNotFound",
    "BackendUnavailable",
    "ComponentInUse",
    "ComponentNotFound",
    "ConfigError",
    "DropRefused",
    "FilterError",
    "IndexNotBuilt",
    "InvalidArtifactRef",
    "InvalidRecord",
    "InvalidURIError",
    "InvalidVector",
    "JobFailed",
    "JobNotFound",
    "JobTimeout",
    "MigrationRequired",
    "NotFoundError",
    "NotVectorOutputs",
    "PinnacleError",
    "ReadOnlyStore",
    "SchemaError",
    "SchemeConflictError",
    "SerializationError",
    "StoreFileGone",
    "TableExists",
    "TableNotFound",
    "UnknownSchemeError",
    "UnsupportedOperation",
    "UntrustedMethodError",
    "UntrustedSerializerError",
    "VectorIndexError",
    "VersionConflict",
]


class PinnacleError(Exception):
    """Base class of every error raised by pinnacledb packages."""


class ConfigError(PinnacleError, ValueError):
    """The configuration (arguments, ``CFG``, environment or config file) is invalid."""


class InvalidURIError(ConfigError):
    """A URI could not be parsed or is missing a required part (the message is redacted)."""


class UnknownSchemeError(ConfigError):
    """No installed package provides a store for this URI scheme."""


class SchemeConflictError(ConfigError):
    """Two installed packages claim the same URI scheme for the same role."""


class BackendUnavailable(PinnacleError, ConnectionError):
    """A store could not be reached; the message names its redacted URI."""


class StoreFileGone(BackendUnavailable):
    """The file of an open file-backed store was deleted or replaced: writes would be lost."""


class ReadOnlyStore(PinnacleError, PermissionError):
    """The store can be read but not written (read-only media or file permissions)."""


class NotFoundError(PinnacleError, LookupError):
    """Base class for a missing object."""


class ComponentNotFound(NotFoundError):
    """No component (or component version) with that key."""


class JobNotFound(NotFoundError):
    """No job with that id."""


class JobTimeout(PinnacleError, TimeoutError):
    """A job did not finish within the time a caller waited for it (it keeps running)."""


class JobFailed(PinnacleError):
    """A job ended FAILED; the message names the failing tasks and their source ids."""


class TableNotFound(NotFoundError):
    """No table or collection with that name."""


class TableExists(PinnacleError):
    """A table or collection with that name already exists."""


class ArtifactError(PinnacleError):
    """Base class for artifact store errors."""


class ArtifactNotFound(ArtifactError, NotFoundError):
    """No blob with that sha256 in the artifact store."""


class ArtifactCorrupted(ArtifactError):
    """A blob's bytes do not hash to its sha256 (or have the wrong size)."""


class InvalidArtifactRef(ArtifactError, ValueError):
    """An artifact key is not a 64-character lowercase sha256 hex digest."""


class VersionConflict(PinnacleError):
    """A component version already exists (or was allocated concurrently) with other content."""


class ComponentInUse(PinnacleError):
    """A component version cannot be removed while other components depend on it."""


class DropRefused(PinnacleError):
    """``drop()`` was called without ``force=True``; nothing was deleted."""


class FilterError(PinnacleError, ValueError):
    """A filter dict uses an unknown operator, a wrong value type or an unknown column."""


class SchemaError(PinnacleError, ValueError):
    """A table schema or a row does not fit the portable type system."""


class InvalidRecord(PinnacleError, ValueError):
    """A record has invalid fields (empty identifier, NUL bytes, non-JSON data, ...)."""


class UnsupportedOperation(PinnacleError, NotImplementedError):
    """This store or engine cannot perform the operation (see its capability flags)."""


class MigrationRequired(PinnacleError):
    """The store's schema is older than this package's; run ``migrate()``."""


class SerializationError(PinnacleError):
    """A value could not be serialized or deserialized."""


class UntrustedSerializerError(SerializationError):
    """A code-executing serializer (pickle, dill, ...) was refused because it is not trusted."""


class UntrustedMethodError(PinnacleError):
    """A stored record names a method its component class does not declare; it is not called.

    The message names the component, the method and how to allow it.
    """


class InvalidVector(PinnacleError, ValueError):
    """A vector or id cannot be indexed: wrong dimension, NaN/inf, zero under cosine, ..."""


class VectorIndexError(PinnacleError):
    """A vector index cannot be built, kept current or searched."""


class NotVectorOutputs(VectorIndexError, SchemaError):
    """A vector index was given a listener whose outputs are not vectors of one length.

    The message names the listener and the output dtype (or value) found.
    """


class IndexNotBuilt(VectorIndexError):
    """A vector index has no current stored build (missing, deleted or for an older model
    version); ``db.catch_up()`` or ``pinnacle index rebuild ID`` repairs it."""

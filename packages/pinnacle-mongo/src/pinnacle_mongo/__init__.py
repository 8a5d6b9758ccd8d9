"""pinnacle-mongo: pinnacledb on MongoDB.

* :class:`MongoDataBackend`: the user's data in collections, portable CRUD plus native access.
* :class:`GridFSArtifactStore`: content-addressed blobs in the GridFS bucket
  ``_pinnacle_artifacts``.
* :class:`MongoMetadataStore`: component records, lineage and jobs in ``_pinnacle_*``
  collections, with ordered schema migrations.

All three take ``mongodb://host:port/database`` or ``mongodb+srv://host/database`` URIs and
connect on first use. Importing this package does not import pymongo.
"""

from __future__ import annotations

from pinnacle_mongo._connection import (
    DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
    MongoConnection,
    parse_mongo_uri,
)
from pinnacle_mongo._native import Aggregate, Find, NativeQuery
from pinnacle_mongo.artifacts import DEFAULT_BUCKET, GridFSArtifactStore
from pinnacle_mongo.data_backend import SCHEMAS_COLLECTION, MongoDataBackend
from pinnacle_mongo.metadata import MongoMetadataStore

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_SERVER_SELECTION_TIMEOUT_MS",
    "SCHEMAS_COLLECTION",
    "Aggregate",
    "Find",
    "GridFSArtifactStore",
    "MongoConnection",
    "MongoDataBackend",
    "MongoMetadataStore",
    "NativeQuery",
    "__version__",
    "parse_mongo_uri",
]

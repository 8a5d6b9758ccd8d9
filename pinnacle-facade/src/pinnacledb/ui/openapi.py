"""The OpenAPI 3.1 document of ``pinnacle ui``'s read-only JSON API (served at
``/api/openapi.json``; the tests check every response against it)."""

from __future__ import annotations

from typing import Any

from pinnacledb.ui.data import MAX_LIMIT, MAX_ROWS

__all__ = ["openapi_document"]

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NSTR = {"type": ["string", "null"]}
_NINT = {"type": ["integer", "null"]}
_NTIME = {"type": ["string", "null"], "format": "date-time"}
_STATUSES = ["pending", "queued", "running", "success", "failed", "cancelled"]


def _obj(props: dict[str, Any], **optional: Any) -> dict[str, Any]:
    """An object with exactly ``props`` (all required) and the ``optional`` properties."""
    return {
        "type": "object",
        "required": sorted(props),
        "properties": {**props, **optional},
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str, **more: Any) -> dict[str, Any]:
    return _obj(
        {
            "total": _INT,
            "offset": _INT,
            "limit": _INT,
            "items": {"type": "array", "items": _ref(item)},
            **more,
        }
    )


def _q(
    name: str, schema: dict[str, Any], description: str, *, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


_OFFSET = _q("offset", {"type": "integer", "minimum": 0}, "items to skip")
_LIMIT = _q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "page size")
_TYPE = _q("type", _STR, "component type_id (model, listener, table, ...)", required=True)
_ID = _q("id", _STR, "component identifier", required=True)
_VERSION = _q("version", {"type": "integer", "minimum": 0}, "version (default: the latest)")

_SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _STR, "status": _INT}),
    "Store": _obj({"role": _STR, "uri": _STR, "scheme": _STR, "class": _STR, "package": _NSTR}),
    "Overview": _obj(
        {
            "stores": {"type": "array", "items": _ref("Store")},
            "components": _obj(
                {
                    "total": _INT,
                    "by_type": {"type": "object", "additionalProperties": _INT},
                }
            ),
            "tables": _obj({"total": _INT}),
            "jobs": _obj(
                {
                    "total": _INT,
                    "by_status": _obj(dict.fromkeys(_STATUSES, _INT)),
                }
            ),
            "artifacts": _obj({"count": _INT, "bytes": _INT, "complete": {"type": "boolean"}}),
        }
    ),
    "Key": _obj({"type_id": _STR, "identifier": _STR, "version": _INT}),
    "ComponentItem": _obj(
        {
            "type_id": _STR,
            "identifier": _STR,
            "latest": _INT,
            "versions": {"type": "array", "items": _INT},
        }
    ),
    "ComponentPage": _page("ComponentItem", type_id=_NSTR, types={"type": "array", "items": _STR}),
    "Artifact": _obj({"name": _STR, "sha256": _STR, "size": _INT, "serializer": _NSTR}),
    "Component": _obj(
        {
            "type_id": _STR,
            "identifier": _STR,
            "version": _INT,
            "versions": {"type": "array", "items": _INT},
            "created_at": _NTIME,
            "class": _NSTR,
            "fields": {"description": "the record's fields (JSON; long values cut)"},
            "content_hash": _STR,
            "artifacts": {"type": "array", "items": _ref("Artifact")},
            "parents": {"type": "array", "items": _ref("Key")},
            "children": {"type": "array", "items": _ref("Key")},
            "tables": {
                "type": "array",
                "items": _obj(
                    {"table": _STR, "relation": {"enum": ["defines", "reads", "writes"]}}
                ),
            },
            "jobs": {"type": "array", "items": _ref("Job")},
            "jobs_total": _INT,
        }
    ),
    "Node": _obj(
        {
            "id": _STR,
            "kind": {"enum": ["component", "table"]},
            "type_id": _STR,
            "identifier": _STR,
            "version": _NINT,
            "label": _STR,
            "center": {"type": "boolean"},
            "x": _INT,
            "y": _INT,
        },
        exists={"type": "boolean", "description": "tables: present in the databackend"},
    ),
    "Edge": _obj(
        {
            "source": _STR,
            "target": _STR,
            "relation": {"enum": ["used by", "reads", "writes", "defines"]},
            "path": {"type": "string", "description": "SVG path data of the drawn edge"},
        }
    ),
    "Lineage": _obj(
        {
            "nodes": {"type": "array", "items": _ref("Node")},
            "edges": {"type": "array", "items": _ref("Edge")},
            "width": _INT,
            "height": _INT,
            "truncated": {"type": "boolean"},
            "center": _NSTR,
        }
    ),
    "Job": _obj(
        {
            "job_id": _STR,
            "kind": _STR,
            "status": {"enum": _STATUSES},
            "component": {"oneOf": [_ref("Key"), {"type": "null"}]},
            "runner": _NSTR,
            "rows_done": _INT,
            "rows_total": _NINT,
            "tasks_done": _INT,
            "tasks_total": _INT,
            "tasks_failed": _INT,
            "fraction": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "created_at": _NTIME,
            "started_at": _NTIME,
            "finished_at": _NTIME,
            "updated_at": _NTIME,
            "seconds": {"type": ["number", "null"]},
            "error": _NSTR,
            "failed_sources": {"type": "array", "items": _STR},
        },
        args={"description": "the job's arguments (only GET /api/job)"},
    ),
    "JobPage": _page("Job", status=_NSTR, component=_NSTR),
    "TableItem": _obj({"name": _STR, "rows": _NINT, "component": {"type": "boolean"}}),
    "TablePage": _page("TableItem"),
    "Column": _obj(
        {
            "name": _STR,
            "dtype": _STR,
            "nullable": {"type": "boolean"},
            "dim": _NINT,
            "encoded": {
                "oneOf": [
                    _obj({"datatype": _STR, "encoder": _STR, "by_reference": {"type": "boolean"}}),
                    {"type": "null"},
                ]
            },
        }
    ),
    "Table": _obj(
        {
            "name": _STR,
            "rows": _INT,
            "columns": {"type": "array", "items": _ref("Column")},
            "codec_error": _NSTR,
            "first_rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "column -> value; bytes and encoded values are objects "
                    "with kind, size and a sha256 prefix (never the bytes)",
                },
            },
            "limit": _INT,
        }
    ),
}


def _get(
    summary: str, schema: str, params: list[dict[str, Any]], *, not_found: bool = False
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": _ref(schema)}},
        },
        "400": {
            "description": "a parameter cannot name anything",
            "content": {"application/json": {"schema": _ref("Error")}},
        },
        "401": {"description": "a token is required (remote mode) and was not given"},
    }
    if not_found:
        responses["404"] = {
            "description": "not found",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document (``version`` is pinnacledb's)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pinnacle ui",
            "version": version,
            "description": "Read-only view of a pinnacledb deployment: only GET and HEAD are "
            "answered (any other method is 405). URIs are redacted and secrets masked. In "
            "remote mode every request carries the token (Authorization: Bearer TOKEN).",
        },
        "paths": {
            "/api/overview": _get(
                "stores, counts of components, tables, jobs, artifacts", "Overview", []
            ),
            "/api/components": _get(
                "components (latest version), filterable by type",
                "ComponentPage",
                [_q("type", _STR, "only this type_id"), _OFFSET, _LIMIT],
            ),
            "/api/component": _get(
                "one component version", "Component", [_TYPE, _ID, _VERSION], not_found=True
            ),
            "/api/lineage": _get(
                "lineage graph of the deployment, or around one component (type and id)",
                "Lineage",
                [
                    _q("type", _STR, "center component type_id"),
                    _q("id", _STR, "center component identifier"),
                    _VERSION,
                    _q("depth", {"type": "integer", "minimum": 0, "maximum": 5}, "hops (2)"),
                ],
                not_found=True,
            ),
            "/api/jobs": _get(
                "jobs, newest first",
                "JobPage",
                [
                    _q("status", {"enum": _STATUSES}, "only this status"),
                    _q("component", _STR, "only jobs of this component identifier"),
                    _q("type", _STR, "with component and version: that exact component"),
                    _VERSION,
                    _OFFSET,
                    _LIMIT,
                ],
            ),
            "/api/job": _get(
                "one job", "Job", [_q("id", _STR, "job id", required=True)], not_found=True
            ),
            "/api/tables": _get("tables and row counts", "TablePage", [_OFFSET, _LIMIT]),
            "/api/table": _get(
                "one table: schema, row count, first rows",
                "Table",
                [
                    _q("name", _STR, "table name", required=True),
                    _q("rows", {"type": "integer", "minimum": 0, "maximum": MAX_ROWS}, "rows"),
                ],
                not_found=True,
            ),
        },
        "components": {"schemas": _SCHEMAS},
    }

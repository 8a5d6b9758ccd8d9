"""Every statement the store runs, built once per dialect with bind parameters.

Building a Core statement costs more CPU than running a small one on SQLite (coercion and
cache-key generation): the store builds each statement once and passes only parameters.
"""

from __future__ import annotations

import functools
from typing import Any

from attrs import frozen
from sqlalchemy import (
    BigInteger,
    String,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import BindParameter

from pinnacle_sql._tables import artifacts, components, counters, jobs, lineage, meta
from pinnacle_sql._types import Name

__all__ = ["Statements", "statements"]

_ROW_LOCK_DIALECTS = frozenset({"postgresql", "mysql", "mariadb", "mssql", "oracle"})


def _name(key: str) -> Any:
    return bindparam(key, type_=Name())


def _int(key: str) -> Any:
    return bindparam(key, type_=BigInteger())


@frozen(kw_only=True)
class Statements:
    """Prepared Core statements of one dialect; parameter names are in each docstring line.

    Attributes:
        alloc: Allocate a version (``t``, ``i``); see ``alloc_kind``.
        raise_floor: Raise a counter to at least ``floor`` (``t``, ``i``, ``floor``).
        alloc_kind: ``"returning"`` (the statement returns the new counter value),
            ``"lastrowid"`` (MySQL: the value comes back as ``lastrowid``) or ``"portable"``
            (UPDATE, then SELECT or INSERT: see the store).
    """

    dialect: str
    alloc: Executable
    raise_floor: Executable
    alloc_kind: str
    counter_update: Executable  # t, i, floor (portable path: floor=-1 means "+1")
    counter_select: Executable  # t, i
    counter_insert: Executable  # t, i, init
    insert_component: Executable
    insert_artifacts: Executable
    get_latest: Executable  # t, i
    get_version: Executable  # t, i, v
    show_all: Executable
    show_type: Executable  # t
    versions: Executable  # t, i
    component_id: Executable  # t, i, v
    component_id_lock: Executable  # t, i, v (FOR UPDATE)
    component_id_share: Executable  # t, i, v (FOR SHARE)
    parents_of_id: Executable  # cid
    parents: Executable  # t, i, v
    children: Executable  # t, i, v
    edge_exists: Executable  # p, c
    insert_edge: Executable  # p, c
    delete_edges: Executable  # cid
    delete_artifacts: Executable  # cid
    delete_component: Executable  # cid
    all_shas: Executable
    insert_job: Executable
    get_job: Executable  # j
    get_job_lock: Executable  # j
    update_job: Executable  # j + the new column values
    delete_job: Executable  # j
    jobs_all: Executable
    jobs_by_component: Executable  # ct, ci, cv
    jobs_by_status: Executable  # s
    jobs_by_both: Executable  # ct, ci, cv, s
    get_meta: Executable  # h
    get_meta_lock: Executable  # h (FOR UPDATE where the dialect has row locks)
    update_meta: Executable  # h, new_value
    insert_meta: Executable
    highest_versions: Executable
    latest_hash_lock: Executable  # t, i (FOR SHARE): content_hash, record of the latest
    #: PostgreSQL only: allocate, insert the record and its artifact refs in ONE statement
    #: (run in autocommit: one round trip). Parameters t, i, tail, created_at, hash, shas.
    create_auto: Executable | None = None
    #: The same with an explicit version: t, i, v, tail, created_at, hash, shas.
    create_explicit: Executable | None = None
    #: DuckDB only (its UPDATE rowcount is always -1): insert or overwrite a meta row
    #: (key_hash, key, value).
    upsert_meta: Executable | None = None


def _upsert_meta() -> Executable:
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    stmt = pg_insert(meta)
    return stmt.on_conflict_do_update(
        index_elements=[meta.c.key_hash], set_={"value": stmt.excluded.value}
    )


_PG_CREATE = """
WITH counter AS (
    INSERT INTO _pinnacle_version_counters (type_id, identifier, next_version)
    VALUES (:t, :i, {initial})
    ON CONFLICT (type_id, identifier) DO UPDATE SET next_version = {new_value}
    RETURNING {version} AS version
), component AS (
    INSERT INTO _pinnacle_components
        (type_id, identifier, version, record, created_at, content_hash)
    SELECT :t, :i, counter.version,
           '{{"version":' || counter.version::text || ',' || :tail,
           :created_at, :hash
    FROM counter
    RETURNING id, version
), refs AS (
    INSERT INTO _pinnacle_component_artifacts (component_id, sha256)
    SELECT component.id, sha FROM component, unnest(CAST(:shas AS varchar[])) AS sha
)
SELECT version FROM component
"""


def _pg_create(*, explicit: bool) -> Executable:
    from sqlalchemy import text
    from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP

    counter = "_pinnacle_version_counters.next_version"
    sql = _PG_CREATE.format(
        initial=":v + 1" if explicit else "1",
        new_value=f"GREATEST({counter}, :v + 1)" if explicit else f"{counter} + 1",
        version="CAST(:v AS bigint)" if explicit else "next_version - 1",
    )
    params: list[BindParameter[Any]] = [
        bindparam("t", type_=String()),
        bindparam("i", type_=String()),
        bindparam("tail", type_=String()),
        bindparam("created_at", type_=TIMESTAMP(timezone=True)),
        bindparam("hash", type_=String()),
        bindparam("shas", type_=ARRAY(String())),
    ]
    if explicit:
        params.append(bindparam("v", type_=BigInteger()))
    return text(sql).bindparams(*params)


@functools.cache
def statements(dialect: str) -> Statements:
    """The statements for ``dialect`` (built once per process; they are immutable)."""
    c, k = components.c, counters.c
    key_where = (c.type_id == _name("t"), c.identifier == _name("i"))
    counter_where = (k.type_id == _name("t"), k.identifier == _name("i"))
    floor = _int("floor")
    raised = case((k.next_version < floor, floor), else_=k.next_version)
    bump = k.next_version + 1

    if dialect in ("postgresql", "sqlite", "duckdb"):
        if dialect in ("postgresql", "duckdb"):
            from sqlalchemy.dialects.postgresql import insert as upsert_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert_insert  # type: ignore[assignment]

        def upsert(initial: Any, new_value: Any) -> Executable:
            stmt = upsert_insert(counters).values(
                type_id=_name("t"), identifier=_name("i"), next_version=initial
            )
            return stmt.on_conflict_do_update(
                index_elements=[k.type_id, k.identifier], set_={"next_version": new_value}
            ).returning(k.next_version)

        alloc, raise_floor, kind = upsert(1, bump), upsert(floor, raised), "returning"
    elif dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        # LAST_INSERT_ID(expr) hands the new counter value back in the OK packet (lastrowid)
        # on both the insert and the update path: allocation is one round trip.
        def upsert_mysql(initial: Any, new_value: Any) -> Executable:
            stmt = mysql_insert(counters).values(
                type_id=_name("t"),
                identifier=_name("i"),
                next_version=func.last_insert_id(initial),
            )
            return stmt.on_duplicate_key_update(next_version=func.last_insert_id(new_value))

        alloc, raise_floor, kind = upsert_mysql(1, bump), upsert_mysql(floor, raised), "lastrowid"
    else:
        alloc = raise_floor = select(k.next_version).where(*counter_where)
        kind = "portable"

    def with_lock(stmt: Any, *, read: bool) -> Executable:
        if dialect in _ROW_LOCK_DIALECTS:
            return stmt.with_for_update(read=read)  # type: ignore[no-any-return]
        return stmt  # type: ignore[no-any-return]

    id_stmt = select(c.id).where(*key_where, c.version == _int("v"))
    known, wanted = components.alias("known"), components.alias("wanted")

    def neighbours(mine: Any, other: Any) -> Executable:
        return (
            select(wanted.c.type_id, wanted.c.identifier, wanted.c.version)
            .select_from(lineage.join(known, mine == known.c.id).join(wanted, other == wanted.c.id))
            .where(
                known.c.type_id == _name("t"),
                known.c.identifier == _name("i"),
                known.c.version == _int("v"),
            )
        )

    j = jobs.c
    job_component = (
        j.component_type_id == _name("ct"),
        j.component_identifier == _name("ci"),
        j.component_version == _int("cv"),
    )
    status = j.status == bindparam("s", type_=String(16))
    return Statements(
        dialect=dialect,
        alloc=alloc,
        raise_floor=raise_floor,
        alloc_kind=kind,
        counter_update=update(counters)
        .where(*counter_where)
        .values(next_version=case((floor < 0, bump), else_=raised)),
        counter_select=select(k.next_version).where(*counter_where),
        counter_insert=insert(counters).values(
            type_id=_name("t"), identifier=_name("i"), next_version=_int("init")
        ),
        insert_component=insert(components),
        insert_artifacts=insert(artifacts),
        get_latest=select(c.record).where(*key_where).order_by(c.version.desc()).limit(1),
        get_version=select(c.record).where(*key_where, c.version == _int("v")),
        show_all=select(c.type_id, c.identifier, func.max(c.version)).group_by(
            c.type_id, c.identifier
        ),
        show_type=select(c.type_id, c.identifier, func.max(c.version))
        .where(c.type_id == _name("t"))
        .group_by(c.type_id, c.identifier),
        versions=select(c.version).where(*key_where),
        component_id=id_stmt,
        component_id_lock=with_lock(id_stmt, read=False),
        component_id_share=with_lock(id_stmt, read=True),
        parents_of_id=select(c.type_id, c.identifier, c.version)
        .select_from(lineage.join(components, lineage.c.parent_id == c.id))
        .where(lineage.c.child_id == _int("cid")),
        parents=neighbours(lineage.c.child_id, lineage.c.parent_id),
        children=neighbours(lineage.c.parent_id, lineage.c.child_id),
        edge_exists=select(lineage.c.parent_id).where(
            lineage.c.parent_id == _int("p"), lineage.c.child_id == _int("c")
        ),
        insert_edge=insert(lineage).values(parent_id=_int("p"), child_id=_int("c")),
        delete_edges=delete(lineage).where(
            or_(lineage.c.parent_id == _int("cid"), lineage.c.child_id == _int("cid"))
        ),
        delete_artifacts=delete(artifacts).where(artifacts.c.component_id == _int("cid")),
        delete_component=delete(components).where(c.id == _int("cid")),
        all_shas=select(artifacts.c.sha256).distinct(),
        insert_job=insert(jobs),
        get_job=select(j.record).where(j.job_id == _name("j")),
        get_job_lock=with_lock(select(j.record).where(j.job_id == _name("j")), read=False),
        update_job=update(jobs).where(j.job_id == _name("j")),
        delete_job=delete(jobs).where(j.job_id == _name("j")),
        jobs_all=select(j.record),
        jobs_by_component=select(j.record).where(*job_component),
        jobs_by_status=select(j.record).where(status),
        jobs_by_both=select(j.record).where(*job_component, status),
        get_meta=select(meta.c.value).where(meta.c.key_hash == bindparam("h", type_=String(64))),
        get_meta_lock=with_lock(
            select(meta.c.value).where(meta.c.key_hash == bindparam("h", type_=String(64))),
            read=False,
        ),
        update_meta=update(meta)
        .where(meta.c.key_hash == bindparam("h", type_=String(64)))
        .values(value=bindparam("new_value", type_=meta.c.value.type)),
        insert_meta=insert(meta),
        highest_versions=select(c.type_id, c.identifier, func.max(c.version)).group_by(
            c.type_id, c.identifier
        ),
        latest_hash_lock=with_lock(
            select(c.content_hash, c.record).where(*key_where).order_by(c.version.desc()).limit(1),
            read=True,
        ),
        create_auto=_pg_create(explicit=False) if dialect == "postgresql" else None,
        create_explicit=_pg_create(explicit=True) if dialect == "postgresql" else None,
        upsert_meta=_upsert_meta() if dialect == "duckdb" else None,
    )

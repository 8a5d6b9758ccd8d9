"""``Listener``: a model applied to a table whose outputs follow the table's rows.

The component is only the description (model, source table, input columns, filter, outputs
table); the machinery that keeps the outputs current lives in :mod:`pinnacledb.listeners`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from attrs import define, field

from pinnacle_protocols.errors import FilterError, InvalidRecord
from pinnacle_protocols.filters import validate_filter
from pinnacledb.components._base import Component
from pinnacledb.components.model import Model

__all__ = ["Listener"]


def _check_inputs(_inst: object, _attr: object, value: Any) -> None:
    if isinstance(value, str):
        if value:
            return
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(v, str) and v for v in value)
        and len(set(value)) == len(value)
    ):
        return
    raise InvalidRecord(
        f"Listener inputs must be a column name or a non-empty list of distinct column names, "
        f"got {value!r}"
    )


def _check_where(_inst: object, _attr: object, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidRecord(f"Listener where must be a filter dict or None, got {value!r}")
    try:
        validate_filter(value)
    except FilterError as exc:
        raise InvalidRecord(f"Listener where is not a valid filter: {exc}") from exc


def _check_opt_name(_inst: object, attr: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value or "\x00" in value):
        raise InvalidRecord(f"Listener {attr.name} must be a non-empty string or None: {value!r}")


def _check_table(_inst: object, _attr: object, value: Any) -> None:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidRecord(f"Listener table must be a non-empty table name, got {value!r}")


def _check_identifier(_inst: object, _attr: object, value: Any) -> None:
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidRecord(f"identifier must be a string without NUL, got {value!r}")


@define(kw_only=True)
class Listener(Component):
    """Keep ``model(inputs(row))`` for every row of ``table`` matching ``where``.

    ``db.apply(listener)`` records it, creates its outputs table and computes the outputs of
    the rows already there (a ``listener.backfill`` job); from then on every ``db.insert``,
    ``db.update`` and ``db.delete`` on ``table`` computes, recomputes or removes the outputs of
    exactly the rows it changed, in-process, before returning. ``db.catch_up()`` repairs what
    writes that bypassed pinnacledb left behind.

    Attributes:
        identifier: Defaults to ``<model identifier>__<table>``.
        model: The model (a component reference: lineage records that the listener uses it).
        table: Source table (may be another listener's outputs table: a chain).
        inputs: One column (the model gets its value) or a list (the model gets the list).
        where: Filter (the portable filter language) selecting the rows that get outputs.
        output: Outputs table (default ``outputs__<identifier>`` made a safe table name).
        id_column: Unique id column of the source table (default ``id`` when the table has it,
            else the backend's native ``_id``); resolved and stored by ``db.apply``.
        output_type: Portable type of the ``output`` column (``"float"``, ``"json"``, ...);
            default inferred from the first outputs computed, the outputs table being created
            then (before that it does not exist and reads treat it as empty).
    """

    type_id: ClassVar[str] = "listener"

    identifier: str = field(default="", validator=_check_identifier)
    model: Model
    table: str = field(validator=_check_table)
    inputs: Any = field(validator=_check_inputs)
    where: dict[str, Any] | None = field(default=None, validator=_check_where)
    output: str | None = field(default=None, validator=_check_opt_name)
    id_column: str | None = field(default=None, validator=_check_opt_name)
    output_type: str | None = field(default=None, validator=_check_opt_name)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.model, Model):
            raise InvalidRecord(f"Listener model must be a Model, got {type(self.model).__name__}")
        if not self.identifier:
            self.identifier = f"{self.model.identifier}__{self.table}"

    @property
    def columns(self) -> list[str]:
        """The input columns, as a list."""
        return [self.inputs] if isinstance(self.inputs, str) else list(self.inputs)

    @property
    def output_table(self) -> str:
        """The outputs table (``output`` or the default derived from the identifier)."""
        from pinnacledb.predict import output_table_name

        return self.output or output_table_name(self.identifier)

"""Helpers for the msgspec structs that form the API's request and response bodies."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

#: Largest primary key (Piccolo's ``Serial`` is a 32-bit integer on PostgreSQL): a larger id
#: cannot exist, and sending it to the database would fail with an out-of-range error.
MAX_ID = 2**31 - 1

#: A reference to a record in a request body: a 422 on the field when out of range.
Id = Annotated[int, Meta(ge=1, le=MAX_ID)]


def partial(struct: type[msgspec.Struct], name: str) -> type[msgspec.Struct]:
    """The PATCH body of ``struct``: every field optional; fields left out stay unchanged.
    ``version`` (optional) makes the update conditional on the record's current version."""
    fields: list[tuple[str, Any, Any]] = [
        (f.name, f.type | UnsetType, UNSET) for f in msgspec.structs.fields(struct)
    ]
    fields.append(("version", int | UnsetType, UNSET))
    return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True, module=struct.__module__)


def set_fields(data: msgspec.Struct) -> dict[str, Any]:
    """The fields a client actually sent (UNSET ones dropped), as plain Python values."""
    out: dict[str, Any] = {}
    for name in data.__struct_fields__:
        value = getattr(data, name)
        if value is UNSET:
            continue
        if isinstance(value, msgspec.Struct | list | dict):
            value = msgspec.to_builtins(value, builtin_types=(datetime.datetime, datetime.date, Decimal))
        out[name] = value
    return out


def to_struct(row: dict[str, Any], struct: type[msgspec.Struct]) -> Any:
    return msgspec.convert(row, struct, from_attributes=False, strict=False)

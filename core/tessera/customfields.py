"""Custom fields: JSON-schema ``properties`` per entity type, declared by plugins (hook
``tessera_custom_field_targets``) and by admins (table ``custom_field_schema``), checked with
jsonschema on every write of that entity type."""

from __future__ import annotations

import weakref
from typing import Any

import jsonschema
import pluggy
from jsonschema import Draft202012Validator

from tessera import audit, clock, events
from tessera.cache import ReadCache
from tessera.entities.tables import CustomFieldSchema
from tessera.errors import FieldError, ValidationFailed
from tessera.plugins import call_each, call_each_async

KERNEL_TARGETS = ("party", "contact", "activity", "task")
#: Custom properties the kernel itself writes (an e-mail activity's Message-ID, tessera.email).
KERNEL_PROPERTIES: dict[str, dict[str, Any]] = {"activity": {"email_message_id": {"type": "string"}}}


def declared_targets(pm: pluggy.PluginManager) -> dict[str, dict[str, Any]]:
    """Entity types that accept custom fields, with the properties plugins declare."""
    targets: dict[str, dict[str, Any]] = {
        name: dict(KERNEL_PROPERTIES.get(name, {})) for name in KERNEL_TARGETS
    }
    for _plugin, value in call_each(pm, "tessera_custom_field_targets"):
        for entity_type, properties in (value or {}).items():
            targets.setdefault(entity_type, {}).update(properties or {})
    return targets


#: plugin manager -> entity type -> the read-only fields plugins declare (hook results never
#: change while a manager lives; asked on every read of a record).
_read_only: weakref.WeakKeyDictionary[pluggy.PluginManager, dict[str, frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)


def read_only_fields(pm: pluggy.PluginManager, entity_type: str) -> frozenset[str]:
    """The custom fields of ``entity_type`` that plugins keep in their own tables (declared
    ``"readOnly": true``; hook ``tessera_custom_field_values``): never stored in ``custom``,
    never set by a write."""
    known = _read_only.setdefault(pm, {})
    if entity_type not in known:
        properties = declared_targets(pm).get(entity_type, {})
        known[entity_type] = frozenset(
            name for name, prop in properties.items() if isinstance(prop, dict) and prop.get("readOnly")
        )
    return known[entity_type]


def refuse_read_only(pm: pluggy.PluginManager, entity_type: str, values: dict[str, Any]) -> None:
    """422 naming each read-only field a write tries to set (or clear)."""
    names = read_only_fields(pm, entity_type)
    refused = sorted(name for name in values if name in names)
    if refused:
        raise ValidationFailed(
            "Custom field validation failed",
            [
                FieldError(f"custom.{name}", "is computed by a plugin and cannot be set (rule: readOnly)")
                for name in refused
            ],
        )


def without_read_only(pm: pluggy.PluginManager, entity_type: str, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the read-only fields (a value stored before a plugin took the field
    over is not kept, nor shown)."""
    names = read_only_fields(pm, entity_type)
    return {k: v for k, v in values.items() if k not in names} if names else values


async def plugin_values(
    pm: pluggy.PluginManager, entity_type: str, ids: list[int]
) -> dict[int, dict[str, Any]]:
    """The read-only custom fields' values of the records ``ids``: ``{id: {field: value}}``."""
    names = read_only_fields(pm, entity_type)
    out: dict[int, dict[str, Any]] = {}
    if not names or not ids:
        return out
    for _plugin, value in await call_each_async(
        pm, "tessera_custom_field_values", entity_type=entity_type, ids=list(ids)
    ):
        for record_id, values in (value or {}).items():
            out.setdefault(int(record_id), {}).update({k: v for k, v in values.items() if k in names})
    return out


async def with_plugin_values(
    pm: pluggy.PluginManager, entity_type: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows (changed in place and returned) with the read-only custom fields' current values
    in ``custom``, one query per plugin for all of them: what every reader of a record shows."""
    if not rows or not read_only_fields(pm, entity_type):
        return rows
    values = await plugin_values(pm, entity_type, [row["id"] for row in rows])
    for row in rows:
        custom = without_read_only(pm, entity_type, row.get("custom") or {})
        row["custom"] = {**custom, **values.get(row["id"], {})}
    return rows


async def effective_schema(pm: pluggy.PluginManager, entity_type: str) -> dict[str, Any]:
    targets = declared_targets(pm)
    if entity_type not in targets:
        raise ValidationFailed.field("entity_type", f"{entity_type!r} does not accept custom fields")
    properties = dict(targets[entity_type])
    required: list[str] = []
    row = (
        await CustomFieldSchema.select()
        .where(CustomFieldSchema.entity_type == entity_type)
        .first()
        .output(load_json=True)
    )
    if row:
        properties.update(row["properties"] or {})
        required = list(row["required"] or [])
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def validate_against(schema: dict[str, Any], values: dict[str, Any], prefix: str = "custom") -> None:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors: list[FieldError] = []
    for error in sorted(validator.iter_errors(values), key=lambda e: [str(p) for p in e.absolute_path]):
        # Where the error is: "custom", or "custom.address" inside an object-valued field.
        where = ".".join([prefix, *(str(p) for p in error.absolute_path)])
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            # Named from the offending object itself, so a stray key nested in an object
            # field is reported (and rejected) too, not only one at the top level.
            declared = set(error.schema.get("properties", {}))
            extra = sorted(set(error.instance) - declared)
            for name in extra:
                errors.append(
                    FieldError(f"{where}.{name}", "unknown custom field (rule: additionalProperties)")
                )
            if extra:
                continue
        if error.validator == "required" and isinstance(error.instance, dict):
            missing = [n for n in error.validator_value if n not in error.instance]
            for name in missing:
                errors.append(FieldError(f"{where}.{name}", "is required (rule: required)"))
            if missing:
                continue
        errors.append(FieldError(where, f"{error.message} (rule: {error.validator})"))
    if errors:
        # One entry per field and message: jsonschema reports each missing name once per rule.
        unique = list(dict.fromkeys(errors))
        raise ValidationFailed("Custom field validation failed", unique)


#: Seconds a write reuses the schema an earlier write of the same entity type read: reading it
#: is a query on every create and update. An admin change in this process is seen at once
#: (the cache is dropped), one made by another process within this many seconds.
SCHEMA_TTL = 2.0
#: (plugin manager, entity type) -> (plugin manager, schema); the manager itself is kept and
#: compared: an id may be reused after garbage collection.
_schemas: ReadCache[tuple[int, str], tuple[object, dict[str, Any]]] = ReadCache(SCHEMA_TTL, max_entries=100)


async def validate(pm: pluggy.PluginManager, entity_type: str, values: dict[str, Any]) -> None:
    refuse_read_only(pm, entity_type, values)
    key = (id(pm), entity_type)
    hit = _schemas.get(key)
    if hit is None or hit[0] is not pm:
        hit = _schemas.put(key, (pm, await effective_schema(pm, entity_type)))
    validate_against(hit[1], values)


async def set_admin_properties(
    pm: pluggy.PluginManager,
    entity_type: str,
    properties: dict[str, Any],
    required: list[str],
    user_id: int | None,
) -> dict[str, Any]:
    if entity_type not in declared_targets(pm):
        raise ValidationFailed.field("entity_type", f"{entity_type!r} does not accept custom fields")
    schema = {"type": "object", "properties": properties, "required": required}
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = ".".join(str(p) for p in exc.absolute_path)
        raise ValidationFailed.field(f"properties.{path}" if path else "properties", exc.message) from exc
    unknown_required = [name for name in required if name not in properties]
    if unknown_required:
        raise ValidationFailed.field("required", f"not declared in properties: {', '.join(unknown_required)}")
    try:
        async with events.unit_of_work():
            await _store_admin_properties(entity_type, properties, required, user_id)
    finally:
        _schemas.clear()
    return await effective_schema(pm, entity_type)


async def _store_admin_properties(
    entity_type: str, properties: dict[str, Any], required: list[str], user_id: int | None
) -> None:
    existing = (
        await CustomFieldSchema.select()
        .where(CustomFieldSchema.entity_type == entity_type)
        .first()
        .output(load_json=True)
    )
    if existing is None:
        rows = await CustomFieldSchema.insert(
            CustomFieldSchema(
                entity_type=entity_type,
                properties=properties,
                required=required,
                updated_at=clock.now(),
                updated_by=user_id,
            )
        ).returning(CustomFieldSchema.id)
        schema_id = rows[0]["id"]
    else:
        schema_id = existing["id"]
        await CustomFieldSchema.update(
            {
                CustomFieldSchema.properties: properties,
                CustomFieldSchema.required: required,
                CustomFieldSchema.updated_at: clock.now(),
                CustomFieldSchema.updated_by: user_id,
            }
        ).where(CustomFieldSchema.id == schema_id)
    # Changing what every write is checked against is an admin change like any other: audited
    # with old -> new, in the same transaction.
    old = {"properties": existing["properties"], "required": existing["required"]} if existing else None
    new = {"properties": properties, "required": list(required)}
    await audit.record(
        "create" if existing is None else "update",
        "custom_field_schema",
        schema_id,
        audit.diff(old, new),
        detail=entity_type,
    )

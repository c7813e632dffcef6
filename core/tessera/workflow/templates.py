"""Process templates: validation (JSON schema + graph rules), versioned publishing, plugin
templates shipped through ``tessera_process_templates``.

A template is identified by its ``key``; each publish stores an immutable new version and
makes it the current one. Running instances keep the version they started on unless they are
migrated by an explicit stage mapping (see ``engine.migrate_instance``).
"""

from __future__ import annotations

import hashlib
import json
import weakref
from functools import lru_cache
from importlib.resources import files
from typing import Any

import jsonschema
import pluggy

from tessera import audit, clock, db, events
from tessera.errors import FieldError, NotFound, ValidationFailed
from tessera.plugins import PluginError, call_each
from tessera.workflow.business_time import BusinessCalendar
from tessera.workflow.tables import WorkflowTemplate


@lru_cache(maxsize=1)
def template_schema() -> dict[str, Any]:
    """The JSON schema every template is validated against (shipped as template.schema.json)."""
    text = files("tessera.workflow").joinpath("template.schema.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        template_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _path(parts: Any) -> str:
    out = "definition"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_definition(definition: Any) -> dict[str, Any]:
    """Check a template document; raise ``ValidationFailed`` naming every problem's path."""
    errors: list[FieldError] = []
    for error in sorted(_validator().iter_errors(definition), key=lambda e: list(e.absolute_path)):
        best = jsonschema.exceptions.best_match([error])
        errors.append(FieldError(_path(best.absolute_path), best.message))
    if errors:
        raise ValidationFailed("The process template is not valid", errors[:50])
    stages = definition["stages"]
    keys = [s["key"] for s in stages]
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            errors.append(FieldError(f"definition.stages[{i}].key", f"stage key {key!r} is used twice"))
        seen.add(key)
    initial = definition.get("initial")
    if initial is not None and initial not in seen:
        errors.append(FieldError("definition.initial", f"no stage has the key {initial!r}"))
    for i, stage in enumerate(stages):
        for j, transition in enumerate(stage.get("transitions", [])):
            if transition["to"] not in seen:
                errors.append(
                    FieldError(
                        f"definition.stages[{i}].transitions[{j}].to",
                        f"no stage has the key {transition['to']!r}",
                    )
                )
        required_keys = [r["key"] for r in stage.get("required", [])]
        if len(set(required_keys)) != len(required_keys):
            errors.append(FieldError(f"definition.stages[{i}].required", "required action keys repeat"))
        if stage.get("final") and stage.get("transitions"):
            errors.append(
                FieldError(f"definition.stages[{i}].transitions", "a final stage has no transitions")
            )
    try:
        BusinessCalendar.from_json(definition.get("business_hours")).zone  # noqa: B018 - validates tz
    except Exception as exc:
        errors.append(FieldError("definition.business_hours.timezone", f"unknown time zone: {exc}"))
    if errors:
        raise ValidationFailed("The process template is not valid", errors)
    return definition


def content_hash(definition: dict[str, Any]) -> str:
    canonical = json.dumps(definition, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def publish(
    definition: dict[str, Any], source: str = "admin", user_id: int | None = None, *, new_key: bool = False
) -> tuple[dict[str, Any], bool]:
    """Store ``definition`` as the next version of its key and make it current.

    Returns ``(template row, created)``; ``created`` is False when the current version already
    has exactly this content (nothing stored). ``new_key=True`` refuses an existing key.
    """
    definition = validate_definition(definition)
    key = definition["key"]
    digest = content_hash(definition)
    async with events.unit_of_work():
        if db.is_postgres():
            # Serialise publishers of one key so two never take the same version number.
            await db.raw("SELECT pg_advisory_xact_lock(hashtext({}))", f"workflow_template:{key}")
        latest = (
            await WorkflowTemplate.select()
            .where(WorkflowTemplate.key == key)
            .order_by(WorkflowTemplate.version, ascending=False)
            .first()
            .output(load_json=True)
        )
        if latest is not None and new_key:
            raise ValidationFailed.field(
                "definition.key", f"template {key!r} exists; publish a new version instead"
            )
        current = (
            await WorkflowTemplate.select()
            .where(WorkflowTemplate.key == key, WorkflowTemplate.is_current == True)  # noqa: E712
            .first()
            .output(load_json=True)
        )
        if current is not None and current["content_hash"] == digest:
            return current, False
        version = (latest["version"] + 1) if latest else 1
        await WorkflowTemplate.update({WorkflowTemplate.is_current: False}).where(WorkflowTemplate.key == key)
        rows = await WorkflowTemplate.insert(
            WorkflowTemplate(
                key=key,
                version=version,
                name=definition["name"],
                description=definition.get("description", ""),
                definition=definition,
                content_hash=digest,
                source=source,
                is_current=True,
                created_by=user_id,
                created_at=clock.now(),
            )
        ).returning(WorkflowTemplate.id)
        template_id = rows[0]["id"]
        await audit.record(
            "publish",
            "workflow_template",
            template_id,
            {"version": [None, version]},
            detail=key,
            user_id=user_id,
        )
        await events.emit(
            "workflow.template_published",
            "workflow_template",
            template_id,
            {"key": key, "version": version, "source": source},
        )
    return await get_version(key, version), True


async def get_version(key: str, version: int | None = None) -> dict[str, Any]:
    """A template version (the current one when ``version`` is None); 404 when missing."""
    query = WorkflowTemplate.select().where(WorkflowTemplate.key == key)
    if version is None:
        query = query.where(WorkflowTemplate.is_current == True)  # noqa: E712
    else:
        query = query.where(WorkflowTemplate.version == version)
    row = await query.first().output(load_json=True)
    if row is None:
        suffix = f" version {version}" if version is not None else ""
        raise NotFound(f"process template {key!r}{suffix} not found")
    return row


async def get_by_id(template_id: int) -> dict[str, Any]:
    row = (
        await WorkflowTemplate.select()
        .where(WorkflowTemplate.id == template_id)
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise NotFound(f"process template {template_id} not found")
    return row


#: Definitions of stored versions by template row id, per database engine (a test process
#: switches databases, whose ids overlap). A stored version never changes (``publish`` adds
#: rows; only ``is_current`` moves), so its definition is read once, not on every transition.
#: Keyed by ``id(engine)`` with the engine kept in the entry (engines take no weak references).
_definitions: dict[int, tuple[Any, dict[int, dict[str, Any]]]] = {}
_DEFINITIONS_KEPT = 1000
_ENGINES_KEPT = 4


def _definition_cache() -> dict[int, dict[str, Any]]:
    engine = db.get_engine()
    entry = _definitions.get(id(engine))
    if entry is None or entry[0] is not engine:
        while len(_definitions) >= _ENGINES_KEPT:
            del _definitions[next(iter(_definitions))]
        entry = _definitions[id(engine)] = (engine, {})
    return entry[1]


async def definition_by_id(template_id: int) -> dict[str, Any]:
    """The (immutable) definition of template version ``template_id``, cached. Callers must
    not change it."""
    cache = _definition_cache()
    definition = cache.get(template_id)
    if definition is None:
        definition = (await get_by_id(template_id))["definition"]
        if len(cache) >= _DEFINITIONS_KEPT:
            cache.clear()
        cache[template_id] = definition
    return definition


async def list_current() -> list[dict[str, Any]]:
    return (
        await WorkflowTemplate.select()
        .where(WorkflowTemplate.is_current == True)  # noqa: E712
        .order_by(WorkflowTemplate.key)
        .output(load_json=True)
    )


async def list_versions(key: str) -> list[dict[str, Any]]:
    rows = (
        await WorkflowTemplate.select()
        .where(WorkflowTemplate.key == key)
        .order_by(WorkflowTemplate.version)
        .output(load_json=True)
    )
    if not rows:
        raise NotFound(f"process template {key!r} not found")
    return rows


_synced: weakref.WeakSet[pluggy.PluginManager] = weakref.WeakSet()


async def sync_plugin_templates(pm: pluggy.PluginManager, force: bool = False) -> list[tuple[str, int]]:
    """Store the templates plugins ship (``tessera_process_templates``) as new versions when
    their content changed. Idempotent; runs once per plugin manager unless ``force``.

    Returns ``(key, version)`` of every version stored now. A template that fails validation
    raises ``PluginError`` naming the plugin.
    """
    if pm in _synced and not force:
        return []
    stored: list[tuple[str, int]] = []
    for plugin, declared in call_each(pm, "tessera_process_templates"):
        for definition in declared or []:
            try:
                row, created = await publish(dict(definition), source=f"plugin:{plugin}")
            except ValidationFailed as exc:
                details = "; ".join(f"{e.field}: {e.message}" for e in exc.errors) or exc.detail
                raise PluginError(f"Plugin {plugin!r} ships an invalid process template: {details}") from exc
            if created:
                stored.append((row["key"], row["version"]))
    _synced.add(pm)
    return stored


def stage_map(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in definition["stages"]}


def initial_stage(definition: dict[str, Any]) -> str:
    return definition.get("initial") or definition["stages"][0]["key"]


def is_final(definition: dict[str, Any], stage_key: str) -> bool:
    stages = definition["stages"]
    stage = stage_map(definition)[stage_key]
    if stage.get("final"):
        return True
    return not stage.get("transitions") and stages[-1]["key"] == stage_key


def next_candidates(definition: dict[str, Any], stage_key: str) -> list[dict[str, Any]]:
    """The transitions out of a stage: declared ones, or the next stage in order."""
    stage = stage_map(definition)[stage_key]
    if stage.get("transitions"):
        return list(stage["transitions"])
    if stage.get("final"):
        return []
    keys = [s["key"] for s in definition["stages"]]
    index = keys.index(stage_key)
    return [{"to": keys[index + 1]}] if index + 1 < len(keys) else []

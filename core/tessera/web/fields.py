"""What the record forms (party, contact, activity, task) add to ``tessera.web.forms``: reading
a browser's form into the API's body (repeated rows of phones, e-mails and addresses, several
choices of one name, custom fields rendered from their JSON schema), and the reverse, a stored
record as the values of its edit form. The body is then decoded by ``decode_form`` into the
very struct the API takes and written by the same service, so the same rules apply.

Form names: ``phones.0.number`` (row 0 of a list of structs, the name the API's errors give
that field), ``custom.<name>`` (a custom field, again the API's error name), ``relations``
(several values of one name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tessera import i18n
from tessera.i18n import N_

#: Form values as a page keeps them between a refusal and the next try: one text per name, or
#: the list of a multi-valued name.
FormState = dict[str, Any]

#: Sub-fields of the repeated rows each list of a party or contact has on the form.
ROWS: dict[str, tuple[str, ...]] = {
    "phones": ("number", "type"),
    "emails": ("address", "type"),
    "addresses": ("text", "city", "postcode", "country", "type"),
}
#: Empty rows offered below the filled ones (no JavaScript: save, and another empty row appears).
SPARE_ROWS = 1

#: Custom field kinds the forms render; a property of another kind (object, array) is not shown
#: and so never changed by a form (a PATCH of ``custom`` is a merge patch).
CUSTOM_KINDS = ("string", "text", "enum", "boolean", "integer", "number", "date", "datetime")

# Texts of refusals that come from the channel checks (tessera.entities.channels), for the
# catalogue (shown through ``forms.human``).
KNOWN_REASONS = (
    N_("is not a possible phone number"),
    N_("is not a phone number"),
    N_("is not a valid e-mail address"),
    N_("is empty"),
)


def form_state(multi: Any, multi_valued: Iterable[str] = ()) -> FormState:
    """A browser form (Litestar's ``FormMultiDict``) as ``{name: text}``, with the names in
    ``multi_valued`` as lists (checkboxes, multiple selects). Uploaded files are left out."""
    several = set(multi_valued)
    out: FormState = {}
    for name in multi.keys():
        values = [v for v in multi.getall(name) if isinstance(v, str)]
        if name in several:
            out[name] = values
        elif values:
            out[name] = values[0]
    for name in several:
        out.setdefault(name, [])
    return out


def row_indexes(form: Mapping[str, Any], list_name: str) -> list[int]:
    found = set()
    pattern = re.compile(rf"^{re.escape(list_name)}\.(\d+)\.\w+$")
    for name in form:
        match = pattern.match(name)
        if match and int(match.group(1)) < 100:
            found.add(int(match.group(1)))
    return sorted(found)


def rows_from_form(form: Mapping[str, Any], list_name: str) -> tuple[list[dict[str, str]], dict[int, int]]:
    """The filled rows of ``list_name`` (a row whose main field is empty is left out) and, for
    the error names, ``{index in the body: index on the form}``."""
    fields = ROWS[list_name]
    rows: list[dict[str, str]] = []
    where: dict[int, int] = {}
    for i in row_indexes(form, list_name):
        row = {f: str(form.get(f"{list_name}.{i}.{f}", "")).strip() for f in fields}
        if not row[fields[0]]:
            continue
        where[len(rows)] = i
        rows.append({k: v for k, v in row.items() if v or k == fields[0]})
    return rows, where


def rows_to_form(form: FormState, list_name: str, rows: list[dict[str, Any]]) -> None:
    for i, row in enumerate(rows):
        for f in ROWS[list_name]:
            value = row.get(f)
            if value not in (None, ""):
                form[f"{list_name}.{i}.{f}"] = str(value)


def row_count(form: Mapping[str, Any], list_name: str) -> list[int]:
    """Row indexes the form shows for ``list_name``: the filled ones and a spare."""
    used = row_indexes(form, list_name)
    start = (max(used) + 1) if used else 0
    return [*used, *range(start, start + SPARE_ROWS)]


def renumber_errors(errors: dict[str, str], list_name: str, where: dict[int, int]) -> dict[str, str]:
    """Error names of the body's rows (``phones.1.number``) as the form's (``phones.3.number``:
    empty rows in between were left out of the body)."""
    out = {}
    pattern = re.compile(rf"^{re.escape(list_name)}\.(\d+)(\..*)?$")
    for name, text in errors.items():
        match = pattern.match(name)
        if match and int(match.group(1)) in where:
            name = f"{list_name}.{where[int(match.group(1))]}{match.group(2) or ''}"
        out[name] = text
    return out


def split_tags(text: str) -> list[str]:
    """``"vip, wholesale"`` -> ``["vip", "wholesale"]`` (tags are typed comma-separated)."""
    return [t.strip() for t in text.split(",") if t.strip()]


# --------------------------------------------------------------------------- custom fields


def custom_fields(schema: Mapping[str, Any], *, read_only: bool = False) -> list[dict[str, Any]]:
    """The custom fields of an effective schema (``customfields.effective_schema``) as form
    fields: name, label (the schema's ``title``, else the name in words), kind, choices,
    required. Kinds the forms cannot edit are left out, and so are the fields plugins compute
    (``readOnly``) unless ``read_only`` (a page showing the values, such as the card)."""
    required = set(schema.get("required") or [])
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or (prop.get("readOnly") and not read_only):
            continue
        kind = _kind(prop)
        if kind is None:
            continue
        out.append(
            {
                "name": name,
                "form_name": f"custom.{name}",
                "label": str(prop.get("title") or label_of(name)),
                "help": str(prop.get("description") or ""),
                "kind": kind,
                "choices": [v for v in prop.get("enum", []) if v is not None],
                # ``"x-labels": "<label group>"``: the options in words (``i18n.register_labels``).
                "options": [
                    (str(v), i18n.label(prop["x-labels"], v) if prop.get("x-labels") else str(v))
                    for v in prop.get("enum", [])
                    if v is not None
                ],
                "required": name in required,
                "max_length": prop.get("maxLength"),
                "minimum": prop.get("minimum"),
                "maximum": prop.get("maximum"),
            }
        )
    return out


def label_of(name: str) -> str:
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _kind(prop: Mapping[str, Any]) -> str | None:
    kind = prop.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if "enum" in prop:
        return "enum"
    if kind == "string":
        if prop.get("format") == "date":
            return "date"
        if prop.get("format") == "date-time":
            return "datetime"
        return "text" if (prop.get("maxLength") or 0) > 300 else "string"
    if kind in ("boolean", "integer", "number"):
        return str(kind)
    return None


def custom_from_form(
    form: Mapping[str, Any], fields: list[dict[str, Any]], existing: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The ``custom`` object of the body: each rendered field's value in its JSON type (a text
    that is not a number stays text, so the schema refuses it as the API would). On a create
    an empty field is left out; on an edit it removes the value (``null`` in a merge patch)."""
    out: dict[str, Any] = {}
    for field in fields:
        name, raw = field["name"], form.get(field["form_name"])
        if field["kind"] == "boolean":
            if raw:
                out[name] = True
            elif existing is not None and name in existing:
                out[name] = False
            continue
        text = (raw or "").strip() if isinstance(raw, str) else ""
        if text == "":
            if existing is not None and existing.get(name) is not None:
                out[name] = None
            continue
        out[name] = _typed(field, text)
    return out


def _typed(field: Mapping[str, Any], text: str) -> Any:
    kind = field["kind"]
    if kind == "enum":
        for choice in field["choices"]:
            if str(choice) == text:
                return choice
        return text
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    if kind == "number":
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text and "," not in text else number
    if kind == "datetime" and re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$", text):
        return datetime.fromisoformat(text).astimezone().isoformat()
    return text


def custom_to_form(form: FormState, fields: list[dict[str, Any]], custom: Mapping[str, Any]) -> None:
    for field in fields:
        value = custom.get(field["name"])
        if value is None:
            continue
        if field["kind"] == "boolean":
            if value:
                form[field["form_name"]] = "on"
        else:
            form[field["form_name"]] = str(value)


# --------------------------------------------------------------------------- activities

#: Fields of the activity forms (the card's "log or plan" form and the edit page).
ACTIVITY_FIELDS = frozenset(
    {
        "type",
        "subject",
        "starts_at",
        "status",
        "duration_minutes",
        "description",
        "outcome",
        "agreements",
        "participant_user_ids",
        "participant_contact_ids",
    }
)
#: Names of the activity forms that carry several values.
ACTIVITY_MULTI = ("participant_user_ids", "participant_contact_ids")


def activity_body(form: Mapping[str, Any]) -> dict[str, Any]:
    """The body of ``ActivityIn`` / ``ActivityPatch`` from an activity form: its fields only
    (participants as lists; the CSRF token and other page fields left out)."""
    return {name: form[name] for name in ACTIVITY_FIELDS if name in form}


# --------------------------------------------------------------------------- misc


def value_label(field: Mapping[str, Any], value: Any) -> str:
    """A custom field's stored value as the card shows it."""
    if field["kind"] == "boolean":
        return i18n.gettext("yes") if value else i18n.gettext("no")
    if field["kind"] == "date":
        return i18n.format_date(value)
    return "" if value is None else str(value)


__all__ = [
    "CUSTOM_KINDS",
    "ROWS",
    "custom_fields",
    "custom_from_form",
    "custom_to_form",
    "form_state",
    "renumber_errors",
    "row_count",
    "rows_from_form",
    "rows_to_form",
    "split_tags",
    "value_label",
]

"""One validation path for web forms: a form is decoded through the very msgspec struct the API
route takes (``ActivityIn``, ``LoginIn``, a plugin's ``CloseIn`` ...), and its errors are the
API's errors (:class:`~tessera.errors.ValidationFailed` naming the field), so a value the API
refuses is refused by the page for the same reason. Pages then show each error beside its
field in words a person reads (:func:`field_errors`), with what the user typed kept.

What a form adds is only the browser's way of sending things: every value is a string, an
empty optional field means "not given", and ``<input type="datetime-local">`` sends a time
without seconds or zone (taken in the server's zone, as the page says).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import msgspec
import msgspec.inspect

from tessera import clock, i18n
from tessera.errors import DomainError, FieldError, ValidationFailed
from tessera.i18n import N_

T = TypeVar("T", bound=msgspec.Struct)

#: Form fields that are the page's own business, never part of the API body.
FORM_ONLY = frozenset({"csrf_token"})
_DATETIME_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


def _is_datetime(annotation: Any) -> bool:
    return annotation is datetime or datetime in getattr(annotation, "__args__", ())


def _form_value(value: str, annotation: Any) -> str:
    if _is_datetime(annotation) and _DATETIME_LOCAL.match(value):
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=clock.now().tzinfo).isoformat()
    return value


def decode_form(struct: type[T], form: Mapping[str, str], **values: Any) -> T:
    """``form`` (plus ``values`` the page itself supplies, e.g. the id in the path) decoded
    into ``struct`` exactly as the API decodes a JSON body; ``ValidationFailed`` naming the
    field otherwise (same messages as the API's 422)."""
    from tessera.api.errors import _field_from_msgspec  # the API's own reading of msgspec errors

    fields = {f.name: f for f in msgspec.structs.fields(struct)}
    body: dict[str, Any] = {}
    for name, value in form.items():
        if name in FORM_ONLY:
            continue
        field = fields.get(name)
        if field is not None and value == "" and not field.required:
            continue  # an empty optional field: not given, the API's default applies
        body[name] = _form_value(value, field.type) if field is not None else value
    body.update(values)
    # Required text is trimmed and blank text refused as the API's input guard does for JSON.
    from tessera.api.input import _clean

    blank: list[FieldError] = []
    body = _clean(body, msgspec.inspect.type_info(struct), "", blank)
    if blank:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in blank), blank)
    try:
        return msgspec.convert(body, struct, strict=False)
    except msgspec.ValidationError as exc:
        field_name, message = _field_from_msgspec(str(exc), None)
        raise ValidationFailed(f"{field_name}: {message}", [FieldError(field_name, message)]) from exc


_HUMAN = [
    (re.compile(r"^Expected `str` of length >= 1$"), N_("must not be empty")),
    (re.compile(r"^must not be blank$"), N_("must not be blank")),
    (re.compile(r"^Expected `str` of length <= (\d+)$"), N_("must be at most {0} characters")),
    (re.compile(r"^Expected `str` of length >= (\d+)$"), N_("must be at least {0} characters")),
    (re.compile(r"^Invalid enum value '.*'$", re.S), N_("is not one of the allowed choices")),
    (re.compile(r"^Invalid RFC3339 encoded datetime$"), N_("is not a valid date and time")),
    (re.compile(r"^Invalid RFC3339 encoded date$"), N_("is not a valid date")),
    (re.compile(r"^Expected `int` >= (-?\d+)$"), N_("must be at least {0}")),
    (re.compile(r"^Expected `int` <= (-?\d+)$"), N_("must be at most {0}")),
    (re.compile(r"^Expected `(int|int \| null)`, got `\w+`$"), N_("must be a whole number")),
    (re.compile(r"^Object missing required field `[^`]+`$"), N_("is required")),
    (re.compile(r"^Object contains unknown field `[^`]+`$"), N_("is not a field of this form")),
    (re.compile(r"^Expected `.*`, got `.*`$"), N_("has the wrong kind of value")),
    # Custom fields (jsonschema, tessera.customfields) and channels (tessera.entities.channels).
    (re.compile(r"^.* is not of type 'integer' \(rule: type\)$", re.S), N_("must be a whole number")),
    (re.compile(r"^.* is not of type 'number' \(rule: type\)$", re.S), N_("must be a number")),
    (re.compile(r"^.* is not one of \[.*\] \(rule: enum\)$", re.S), N_("is not one of the allowed choices")),
    (re.compile(r"^is required \(rule: required\)$"), N_("is required")),
    (re.compile(r"^.* is not a 'date' \(rule: format\)$", re.S), N_("is not a valid date")),
    (re.compile(r"^.* is not a 'date-time' \(rule: format\)$", re.S), N_("is not a valid date and time")),
    (re.compile(r"^.* is too long \(rule: maxLength\)$", re.S), N_("is too long")),
    (
        re.compile(r"^.* is less than the minimum of (\S+) \(rule: minimum\)$", re.S),
        N_("must be at least {0}"),
    ),
    (
        re.compile(r"^.* is greater than the maximum of (\S+) \(rule: maximum\)$", re.S),
        N_("must be at most {0}"),
    ),
    (re.compile(r"^unknown custom field"), N_("is not a field of this form")),
    (re.compile(r"^is not a phone number \(.*\)$", re.S), N_("is not a phone number")),
    (
        re.compile(r"^(The email address|The domain name|An email address|The part) ", re.S),
        N_("is not a valid e-mail address"),
    ),
]


def human(message: str) -> str:
    """A validation message in words a person reads (the API's messages name msgspec's types),
    in the request's language (tessera.i18n)."""
    for pattern, text in _HUMAN:
        match = pattern.match(message)
        if match:
            return i18n.gettext(text).format(*match.groups())
    return i18n.translate_message(message)


def field_errors(exc: DomainError, form_fields: set[str] | frozenset[str]) -> dict[str, str]:
    """``{field: message}`` of ``exc`` for the form's fields; everything else (an error about a
    field the form does not show, or the error's whole detail) under ``""``, without the
    field's internal name."""
    out: dict[str, str] = {}
    for error in exc.errors:
        key = error.field if error.field in form_fields else ""
        text = human(error.message)
        out[key] = f"{out[key]}; {text}" if key in out else text
    if not out:
        out[""] = exc.detail
    return out


__all__ = ["FORM_ONLY", "decode_form", "field_errors", "human"]

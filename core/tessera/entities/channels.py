"""Phones and e-mails: normalised on write so matching, dedup and search do not depend on how
a person typed them (+7 (495) 123-45-67 and 84951234567 are the same number)."""

from __future__ import annotations

from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from tessera.errors import FieldError, ValidationFailed

#: Region used for numbers written without a country code (trunk prefix 8 in RU, 0 in UA ...).
DEFAULT_REGION = "RU"


def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """E.164 form (``+74951234567``); raises ValueError when it is not a phone number."""
    text = raw.strip()
    if not text:
        raise ValueError("is empty")
    digits = "".join(ch for ch in text if ch.isdigit())
    # Russian long-distance prefix: 8 495 ... is +7 495 ...
    if not text.startswith("+") and len(digits) == 11 and digits.startswith("8") and region == "RU":
        text = "+7" + digits[1:]
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"is not a phone number ({exc})") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError("is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_search_forms(e164: str) -> list[str]:
    """Digit strings a user might type for this number: 74951234567, 84951234567, 4951234567."""
    digits = e164.lstrip("+")
    forms = {digits}
    if digits.startswith("7") and len(digits) == 11:
        forms.add("8" + digits[1:])
        forms.add(digits[1:])
    if digits.startswith("380") and len(digits) == 12:
        forms.add("0" + digits[3:])
        forms.add(digits[3:])
    return sorted(forms)


def normalise_email(raw: str) -> str:
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


def normalise_channels(values: dict[str, Any], field_prefix: str = "") -> dict[str, Any]:
    """Normalise ``phones`` and ``emails`` lists in place and rebuild ``contact_index``."""
    errors: list[FieldError] = []
    for i, phone in enumerate(values.get("phones") or []):
        try:
            phone["number"] = normalise_phone(phone["number"])
        except ValueError as exc:
            errors.append(FieldError(f"{field_prefix}phones.{i}.number", str(exc)))
    for i, email in enumerate(values.get("emails") or []):
        try:
            email["address"] = normalise_email(email["address"])
        except ValueError as exc:
            errors.append(FieldError(f"{field_prefix}emails.{i}.address", str(exc)))
    if errors:
        raise ValidationFailed("Invalid contact details", errors)
    return values


def contact_index(phones: list[dict[str, Any]], emails: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for phone in phones:
        parts.extend(phone_search_forms(phone["number"]))
    parts.extend(email["address"] for email in emails)
    return " ".join(parts)

"""Languages of everything a person reads (issue 15.1): Russian, Ukrainian and English.

* Catalogues are standard gettext ``.po`` files (``<dir>/<locale>/LC_MESSAGES/messages.po``)
  of the kernel (``tessera/locale``) and of every enabled plugin that declares a catalogue
  directory with the ``tessera_translations`` hook. They are compiled in memory with Babel the
  first time a locale is used, so a fresh checkout needs no build step; the plugin catalogues
  are merged over the kernel's.
* The language of a request is a context variable (:func:`activate`): the user's profile
  setting, else the browser's ``Accept-Language`` (:func:`negotiate`), else the deployment's
  ``default_locale`` setting. :func:`gettext` and friends, the Jinja2 ``i18n`` extension of
  the web pages and the formatting filters all read it.
* Internal codes (statuses, activity types, event kinds ...) are never shown: :func:`label`
  turns ``("activity.type", "claim")`` into "Claim" / "Претензия" / "Претензія". Plugins add
  their codes with :func:`register_labels` (the words go through their own catalogue).
* Dates, numbers and money are formatted per locale with Babel (:func:`format_datetime`,
  :func:`format_number`, :func:`format_money`).

Re-extract the catalogues after changing texts: ``python scripts/i18n.py`` (docs/i18n.md).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, dates, numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import LazyProxy, NullTranslations, Translations

#: The languages of the UI; a user's ``locale`` must be one of them.
LOCALES: tuple[str, ...] = ("ru", "uk", "en")
#: The kernel's catalogue folder (``ru/LC_MESSAGES/messages.po`` ...).
KERNEL_CATALOGUE = Path(__file__).parent / "locale"

_default_locale = "en"
_catalogue_dirs: list[Path] = [KERNEL_CATALOGUE]
_cache: dict[str, NullTranslations] = {}
_locale: ContextVar[str | None] = ContextVar("tessera_locale", default=None)
_timezone: ContextVar[str | None] = ContextVar("tessera_timezone", default=None)


def configure(default_locale: str = "en", plugin_catalogues: Iterable[str | Path] = ()) -> None:
    """Set the deployment's default language and the plugins' catalogue folders (called when
    an app is built). Unknown default languages fall back to English."""
    global _default_locale
    _default_locale = default_locale if default_locale in LOCALES else "en"
    _catalogue_dirs[:] = [KERNEL_CATALOGUE, *(Path(d) for d in plugin_catalogues)]
    _cache.clear()


def default_locale() -> str:
    return _default_locale


def _load(directory: Path, locale: str) -> Translations | None:
    po = directory / locale / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return None
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer)


def translations(locale: str | None = None) -> NullTranslations:
    """The merged translations (kernel, then each enabled plugin) of ``locale``."""
    locale = locale or current_locale()
    found = _cache.get(locale)
    if found is None:
        merged: NullTranslations | None = None
        for directory in _catalogue_dirs:
            loaded = _load(directory, locale)
            if loaded is None:
                continue
            if merged is None:
                merged = loaded
            else:
                merged.merge(loaded)  # type: ignore[attr-defined]
        found = merged or NullTranslations()
        _cache[locale] = found
    return found


def current_locale() -> str:
    return _locale.get() or _default_locale


def current_timezone() -> str | None:
    return _timezone.get()


def activate(locale: str | None, timezone: str | None = None) -> str:
    """Use ``locale`` (or the default) for the rest of this request; returns the locale used."""
    chosen = locale if locale in LOCALES else _default_locale
    _locale.set(chosen)
    _timezone.set(timezone)
    return chosen


def negotiate(accept_language: str | None) -> str | None:
    """The best of :data:`LOCALES` for an ``Accept-Language`` header, or None."""
    if not accept_language:
        return None
    preferred: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().replace("_", "-")
        quality = 1.0
        for piece in pieces[1:]:
            key, _, value = piece.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            preferred.append((-quality, position, tag))
    ordered = [tag for _q, _p, tag in sorted(preferred)]
    found = Locale.negotiate(ordered, list(LOCALES), sep="-")
    return str(found) if found is not None else None


def gettext_for(locale: str | None, message: str, **variables: Any) -> str:
    """``message`` in ``locale`` (a user's profile setting; empty: the default language), for
    texts written now and read later by that user (a notification to an administrator)."""
    chosen = locale if locale in LOCALES else _default_locale
    text = translations(chosen).gettext(message)
    return text % variables if variables else text


def gettext(message: str, **variables: Any) -> str:
    """``message`` in the current language; ``%(name)s`` placeholders filled from ``variables``."""
    text = translations().gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: Any) -> str:
    text = translations().ngettext(singular, plural, n)
    return text % {"num": n, **variables}


def pgettext(context: str, message: str) -> str:
    return translations().pgettext(context, message)


def lazy_gettext(message: str, **variables: Any) -> LazyProxy:
    """A text translated when it is shown (for module-level constants)."""
    return LazyProxy(gettext, message, enable_cache=False, **variables)


def N_(message: str) -> str:
    """Marks a text for extraction without translating it here (translated when shown)."""
    return message


_ = gettext


def translate_message(message: str) -> str:
    """An error or refusal text (``DomainError.detail``) in the current language: the whole
    text when the catalogue has it, else ``"<what>: <reason>"`` with the reason translated."""
    if not message:
        return message
    found = gettext(message)
    if found != message:
        return found
    head, sep, tail = message.rpartition(": ")
    if sep and tail:
        reason = gettext(tail)
        if reason != tail:
            return f"{head}: {reason}"
    return message


#: Kernel refusals a person reads on a page (their ``detail``), in the catalogue so that
#: :func:`translate_message` finds them.
KNOWN_MESSAGES = (
    N_("Wrong e-mail or password"),
    N_("Too many failed logins; try again later"),
    N_("Sign in again"),
    N_("There is no such record, or you may not see it."),
)


# -- labels of internal codes ------------------------------------------------------------------

_LABELS: dict[str, dict[str, str]] = {}


def register_labels(group: str, labels: Mapping[str, str]) -> None:
    """Human words for the codes of ``group`` (``"activity.type"``, ``"sales.deal.status"``):
    ``{"claim": N_("Claim")}``; the words are msgids of the registering package's catalogue."""
    _LABELS.setdefault(group, {}).update(labels)


def label(group: str, code: Any) -> str:
    """The human word for an internal code, in the current language. An unknown code is shown
    as words (``in_progress`` -> "In progress"), never as the code with dots and underscores."""
    if code is None or code == "":
        return ""
    text = _LABELS.get(group, {}).get(str(code))
    if text is not None:
        return gettext(text)
    words = str(code).rsplit(".", 1)[-1].replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def label_words(group: str, code: Any) -> str:
    """The words of a code in every language, once each (``"Won Выиграна Виграна"``): for
    search indexes, so a person finds a record by the words they read, in any language."""
    if code is None or code == "":
        return ""
    text = _LABELS.get(group, {}).get(str(code))
    if text is None:
        return label(group, code)
    return " ".join(dict.fromkeys(translations(locale).gettext(text) for locale in LOCALES))


def labelled_codes(group: str) -> frozenset[str]:
    """The codes of ``group`` that have registered words (empty: none registered)."""
    return frozenset(_LABELS.get(group, {}))


register_labels(
    "activity.type",
    {
        "call": N_("Call"),
        "meeting": N_("Meeting"),
        "email": N_("E-mail"),
        "letter": N_("Letter"),
        "seminar": N_("Seminar"),
        "mailing": N_("Mailing"),
        "claim": N_("Claim"),
        "note": N_("Note"),
    },
)
register_labels(
    "activity.status", {"planned": N_("Planned"), "done": N_("Done"), "cancelled": N_("Cancelled")}
)
register_labels(
    "task.status",
    {"open": N_("Open"), "in_progress": N_("In progress"), "done": N_("Done"), "cancelled": N_("Cancelled")},
)
register_labels(
    "task.priority", {"low": N_("Low"), "normal": N_("Normal"), "high": N_("High"), "urgent": N_("Urgent")}
)
register_labels(
    "party.status",
    {"new": N_("New"), "potential": N_("Potential"), "current": N_("Current"), "former": N_("Former")},
)
register_labels(
    "party.relation",
    {
        "client": N_("Client"),
        "partner": N_("Partner"),
        "supplier": N_("Supplier"),
        "competitor": N_("Competitor"),
    },
)
register_labels(
    "phone.type",
    {"work": N_("work"), "mobile": N_("mobile"), "home": N_("home"), "fax": N_("fax"), "other": N_("other")},
)
register_labels(
    "timeline.kind",
    {
        "task": N_("Task"),
        "note": N_("Note"),
        "attachment": N_("File"),
        "party.status": N_("Status changed"),
        **{
            f"activity.{code}": text
            for code, text in (
                ("call", N_("Call")),
                ("meeting", N_("Meeting")),
                ("email", N_("E-mail")),
                ("letter", N_("Letter")),
                ("seminar", N_("Seminar")),
                ("mailing", N_("Mailing")),
                ("claim", N_("Claim")),
                ("note", N_("Note")),
            )
        },
    },
)


# -- texts of shipped data -----------------------------------------------------------------------

_SHIPPED: dict[str, str] = {}


def register_shipped_texts(texts: Iterable[str], aliases: Mapping[str, str] | None = None) -> None:
    """Texts of data a package ships and stores (the stage names and requirement labels of a
    plugin's pipelines, ...): msgids of the registering package's catalogue, shown translated by
    :func:`shipped_text`. ``aliases`` maps texts stored by earlier releases (the Russian names
    before they became msgids) to their msgid, so rows stored then read the same."""
    for text in texts:
        _SHIPPED[text] = text
    _SHIPPED.update(aliases or {})


def shipped_text(text: Any) -> Any:
    """A stored text in the current language when it is a registered shipped text; anything
    else (a name an admin typed for their own pipeline) as it is."""
    if not isinstance(text, str):
        return text
    msgid = _SHIPPED.get(text)
    return gettext(msgid) if msgid is not None else text


def status_change(old: str | None, new: str) -> str:
    """A party's status change in words: "Potential → Current"."""
    return f"{label('party.status', old or 'new')} → {label('party.status', new)}"


# -- formatting --------------------------------------------------------------------------------


def _zone() -> ZoneInfo | None:
    name = current_timezone()
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def format_datetime(value: Any, format: str = "short") -> str:
    """A moment in the user's time zone and language ("5 дек. 2026 г., 15:00")."""
    if not isinstance(value, datetime):
        return format_date(value, format)
    zone = _zone()
    if zone is not None and value.tzinfo is not None:
        value = value.astimezone(zone)
    if format == "short":  # "5 дек. 2026 г., 15:00", "Dec 5, 2026, 3:00 PM"
        locale = current_locale()
        day = dates.format_date(value, "medium", locale=locale)
        return f"{day}, {dates.format_time(value, 'short', locale=locale)}"
    return dates.format_datetime(value, format, locale=current_locale())


def format_date(value: Any, format: str = "medium") -> str:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, date):
        return ""
    return dates.format_date(value, format if format != "short" else "medium", locale=current_locale())


def format_number(value: Any, digits: int | None = None) -> str:
    if value is None or value == "":
        return ""
    number = Decimal(str(value))
    if digits is None:
        return numbers.format_decimal(number, locale=current_locale())
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    return numbers.format_decimal(number, format=pattern, locale=current_locale())


def format_percent(value: Any) -> str:
    """A ratio (0.25) as a percentage per locale ("25 %", "25%")."""
    if value is None or value == "":
        return ""
    return numbers.format_percent(Decimal(str(value)), locale=current_locale())


def format_money(amount: Any, currency: str | None) -> str:
    """An amount with its currency, per locale ("125 000,00 ₽", "RUB 125,000.00")."""
    if amount is None or amount == "":
        return ""
    number = Decimal(str(amount))
    if not currency:
        return format_number(number, 2)
    return numbers.format_currency(number, currency, locale=current_locale())


def language_names() -> list[tuple[str, str]]:
    """``(code, name)`` of each UI language, named in its own language (for the switcher)."""
    return [(code, Locale.parse(code).get_display_name(code).capitalize()) for code in LOCALES]


__all__ = [
    "LOCALES",
    "N_",
    "activate",
    "configure",
    "current_locale",
    "format_date",
    "format_datetime",
    "format_money",
    "format_number",
    "format_percent",
    "gettext",
    "label",
    "labelled_codes",
    "language_names",
    "lazy_gettext",
    "negotiate",
    "ngettext",
    "pgettext",
    "register_labels",
    "register_shipped_texts",
    "shipped_text",
    "status_change",
    "translate_message",
    "translations",
]

"""Hooks the knowledge base offers to other plugins (added to the kernel's plugin manager by the
knowledge base the first time it needs them, see ``rules.plugin_manager``): facts that other
plugins know about a record, which the expert system's rules may name (survey answers from the
marketing plugin: ``survey.<survey_key>.<question_key>``).

Implement them with ``@hookimpl(optionalhook=True)`` (``from tessera.hookspecs import
hookimpl``): the marker tells pluggy the hook belongs to an optional plugin, so your plugin
still loads where the knowledge base is not installed or is disabled. The knowledge base never
imports the plugins that answer.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("tessera")


@hookspec
def tessera_advice_fact_names(kind: str) -> Any:
    """Return the facts your plugin knows about records of ``kind`` (``"party"``, ``"deal"``,
    ``"ticket"``), as ``{fact name: human description}``, e.g.
    ``{"survey.nps.score": "NPS survey: How likely are you to recommend us?"}``.

    A rule naming a fact nobody offers is refused when it is saved; the names listed here are
    accepted. Use a prefix of your own (``survey.``) — the knowledge base's own facts
    (``party.``, ``deal.``, ``ticket.``, ``history.``) win over a plugin's of the same name.
    May be a coroutine (awaited): read the names from your tables, so a rule saved on any node
    right after a restart sees them. Called when rules are saved and when the rule editor lists
    facts: keep it cheap.
    """


@hookspec
def tessera_advice_facts(kind: str, record: dict[str, Any]) -> Any:
    """Return the values of your facts for one record, as ``{fact name: value}`` (a value may be
    a string, a number, a bool, a timestamp, a list or None); may be a coroutine (awaited).

    :param kind: ``"party"``, ``"deal"`` or ``"ticket"``.
    :param record: the record as the person asking for advice reads it, with ``party_id`` (for a
        party: its own id; None for a deal or ticket without a client).

    Called on every evaluation of the rules on a record (advice on demand and on the record's
    events): answer with a query or two, never one per fact. Facts you leave out count as
    missing (``exists`` is false, ``eq`` does not match).
    """

"""Where a person opens a record: the web page of a kernel record, or of a plugin's record
through the hook ``tessera_record_urls``. Used by the search results and notifications pages
to turn a hit or a message's ``ref`` ("task:12") into a link."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pluggy

from tessera.plugins import call_each_async

#: Kernel records with a page of their own (``{id}`` is the record's id).
KERNEL_PAGES = {
    "party": "/app/parties/{id}",
    "task": "/app/tasks/{id}",
    "user": "/app/admin/users",
    "audit": "/app/admin/audit",
}

#: Kernel records shown on their client's card (a search hit carries the ``party_id``).
ON_THE_CARD = {"contact": "contact", "activity": "activity", "note": "note"}


def kernel_url(kind: str, record_id: int | str, party_id: int | None = None) -> str | None:
    """The page of a kernel record, or None (not a kernel kind, or nowhere to show it)."""
    if kind in KERNEL_PAGES:
        return KERNEL_PAGES[kind].format(id=record_id)
    if kind in ON_THE_CARD and party_id is not None:
        return f"/app/parties/{party_id}#{ON_THE_CARD[kind]}-{record_id}"
    return None


async def plugin_urls(pm: pluggy.PluginManager, kind: str, ids: Iterable[int]) -> dict[int, str]:
    """The pages plugins give for records of ``kind`` (first plugin to answer wins per id)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    found: dict[int, str] = {}
    for _name, urls in await call_each_async(pm, "tessera_record_urls", kind=kind, ids=wanted):
        for record_id, url in (urls or {}).items():
            if isinstance(url, str) and url.startswith("/") and not url.startswith("//"):
                found.setdefault(int(record_id), url)
    return found


async def ref_urls(pm: pluggy.PluginManager, refs: Iterable[str]) -> dict[str, str]:
    """Links for references like ``"task:12"`` or ``"sales_cadence_rule:3"`` (notifications)."""
    out: dict[str, str] = {}
    by_kind: dict[str, list[int]] = defaultdict(list)
    for ref in set(refs):
        kind, sep, raw = ref.partition(":")
        if not sep:
            continue
        url = kernel_url(kind, raw)
        if url is not None:
            out[ref] = url
        elif raw.isdigit():
            by_kind[kind].append(int(raw))
    for kind, ids in by_kind.items():
        for record_id, url in (await plugin_urls(pm, kind, ids)).items():
            out[f"{kind}:{record_id}"] = url
    return out


async def hit_urls(pm: pluggy.PluginManager, hits: Iterable[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """Links for search hits (``type``, ``id``, ``party_id``)."""
    out: dict[tuple[str, int], str] = {}
    by_type: dict[str, list[int]] = defaultdict(list)
    for hit in hits:
        url = kernel_url(hit["type"], hit["id"], hit.get("party_id"))
        if url is not None:
            out[(hit["type"], hit["id"])] = url
        elif hit["type"] not in KERNEL_PAGES and hit["type"] not in ON_THE_CARD:
            by_type[hit["type"]].append(hit["id"])
    for kind, ids in by_type.items():
        for record_id, url in (await plugin_urls(pm, kind, ids)).items():
            out[(kind, record_id)] = url
    return out

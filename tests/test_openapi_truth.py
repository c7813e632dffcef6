"""The OpenAPI document tells the truth: nullable fields accept null, downloads name their
media types, public operations need no credentials (tessera.api.openapi)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest


def _nodes(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _nodes(item)


@pytest.mark.plugins("sales", "service")
async def test_nullable_fields_validate_null_and_downloads_name_their_media_types(crm):
    schema = (await crm.get("/schema/openapi.json")).json()
    # No exclusive choice with a null branch anywhere (with an open branch it rejects null).
    assert not [n for n in _nodes(schema) if {"type": "null"} in (n.get("oneOf") or [])]
    job = schema["components"]["schemas"]["JobOut"]
    for field in ("next_run_at", "last_run_at"):
        jsonschema.validate(None, job["properties"][field])
    party = schema["components"]["schemas"]["PartyOut"]
    nullable = [f for f, s in party["properties"].items() if {"type": "null"} in s.get("anyOf", [])]
    assert nullable
    for field in nullable:
        jsonschema.validate(None, party["properties"][field])

    paths = schema["paths"]
    ok = lambda path: paths[path]["get"]["responses"]["200"]["content"]  # noqa: E731
    assert list(ok("/api/parties/export")) == [
        "text/csv",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ]
    assert list(ok("/api/sales/proposals/{proposal_id}/pdf")) == ["application/pdf"]
    assert ok("/api/attachments/{attachment_id}/content") == {
        "*/*": {"schema": {"type": "string", "format": "binary"}}
    }
    assert paths["/api/auth/login"]["post"]["security"] == [{}]
    assert paths["/api/auth/password-reset"]["post"]["security"] == [{}]
    assert "security" not in paths["/api/auth/password"]["post"]  # needs the caller

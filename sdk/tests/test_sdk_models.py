"""The SDK's models and resources cannot drift from the API: they are regenerated from the
OpenAPI schema of the kernel and every first-party plugin and compared with the committed
file, and every resource the client offers is checked against the schema's operations."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from tessera_sdk import codegen, models
from tessera_sdk.client import ENTITY_RESOURCES, AsyncClient, Client


def test_committed_models_match_the_openapi_schema() -> None:
    expected = codegen.format_source(codegen.generate(codegen.first_party_openapi()))
    actual = codegen.MODELS_PATH.read_text(encoding="utf-8")
    assert actual == expected, (
        "tessera_sdk/models.py is out of date with the API: run `.venv/bin/python -m tessera_sdk.codegen`"
    )


def test_blocking_client_is_generated_from_the_asyncio_client() -> None:
    actual = codegen.SYNC_CLIENT_PATH.read_text(encoding="utf-8")
    assert actual == codegen.sync_client_source(), (
        "tessera_sdk/_sync/client.py is out of date with _async/client.py: "
        "run `.venv/bin/python -m tessera_sdk.codegen`"
    )


def test_both_clients_offer_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(Client) - {"close"} == public(AsyncClient) - {"aclose"}
    for attr in ENTITY_RESOURCES:
        sync_resource = type(getattr(Client("http://x"), attr))
        async_resource = type(getattr(AsyncClient("http://x"), attr))
        assert public(sync_resource) == public(async_resource), attr


def _response_ref(operation: dict[str, Any]) -> str | None:
    for status in ("200", "201"):
        content = operation.get("responses", {}).get(status, {}).get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        if "$ref" in schema:
            return str(schema["$ref"]).rsplit("/", 1)[-1]
    return None


def _request_ref(operation: dict[str, Any]) -> str | None:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    return str(schema["$ref"]).rsplit("/", 1)[-1] if "$ref" in schema else None


def test_every_entity_resource_uses_the_models_the_schema_names() -> None:
    paths = codegen.first_party_openapi()["paths"]
    for attr, (path, out, create, patch) in ENTITY_RESOURCES.items():
        listing, one = paths[path], paths[f"{path}/{{record_id}}"]
        assert _response_ref(listing["get"]) == f"{out.__name__}Page", attr
        assert _response_ref(one["get"]) == out.__name__, attr
        if create is None:
            assert "post" not in listing, attr
        else:
            assert _request_ref(listing["post"]) == create.__name__, attr
        if patch is not None:
            assert _request_ref(one["patch"]) == patch.__name__, attr
        for client in (Client, AsyncClient):
            resource = getattr(client("http://x"), attr)
            assert resource.path == path and resource.out is out, (client.__name__, attr)


def test_every_schema_of_a_live_server_has_a_model(live_server) -> None:
    schema = httpx.get(f"{live_server.url}/schema/openapi.json", timeout=30).json()
    names = set(schema["components"]["schemas"])
    assert names <= set(models.MODELS), sorted(names - set(models.MODELS))
    for name in names:
        fields = set(schema["components"]["schemas"][name].get("properties", {}))
        struct_fields = {f.encode_name for f in msgspec.structs.fields(models.MODELS[name])}
        assert fields == struct_fields, name

"""Post-processing that makes the generated OpenAPI document say exactly what the API does,
for every route a plugin adds as well as the kernel's (applied once to the built schema, after
:func:`tessera.api.errors.document_errors`):

* **Nullable fields validate ``null``.** Litestar writes ``X | None`` as ``oneOf: [X, {type:
  null}]``; when ``X`` is an open schema (``{}`` for ``Any``) both branches accept ``null`` and
  ``oneOf`` (exactly one) rejects the very value the field may hold. Every ``oneOf`` that has a
  ``null`` branch becomes an ``anyOf`` (the same set of values when the branches are disjoint,
  the right one when they overlap), and an open branch absorbs the ``null`` one.
* **Downloads name their media types.** A handler declares what its 200 carries with
  :func:`download` (``opt={"download": [...]}``) or a binary ``media_type=`` on its decorator;
  the schema then lists those media types (binary ones as ``format: binary`` strings) instead
  of the JSON Litestar assumes for a ``Response``. A file answer without a declared type
  (``File`` with the type the uploader gave) is ``*/*`` binary.
* **Public operations** (handlers without a ``principal``: sign-in, health, password reset)
  declare ``security: [{}]``, so the document does not claim they need credentials.
* **Preconditions.** Every operation that takes an ``If-Match`` header documents 412 (stale
  version, ``current_version`` in the body) and 428 (the server requires a precondition and
  none was sent; only with the ``require_preconditions`` setting).
"""

from __future__ import annotations

import functools
from typing import Any

from litestar import MediaType

_PRECONDITION_DESCRIPTIONS = {
    "412": "Precondition failed: If-Match names a version that is no longer current "
    "(``current_version`` in the body)",
    "428": "Precondition required: this server requires If-Match (or ``version`` in the body) on "
    "changes and deletes of versioned records (setting ``require_preconditions``)",
}

#: Binary media types are described as ``format: binary`` strings, text ones as strings.
_TEXT_TYPES = ("text/",)


def download(*media_types: str, besides_json: bool = False) -> dict[str, Any]:
    """``opt`` for a route handler whose 200 answer is a file of one of ``media_types``:
    ``@get("/export", opt=download("text/csv"))``; ``besides_json=True`` when the same route
    answers its JSON model too (``?format=csv`` picks the file)."""
    return {"download": list(media_types), "download_besides_json": besides_json}


def _is_open(schema: Any) -> bool:
    return isinstance(schema, dict) and not schema


def _fix_nullable(node: Any) -> Any:
    """Rewrite, in place and recursively, every ``oneOf`` with a ``{type: null}`` branch."""
    if isinstance(node, dict):
        for value in node.values():
            _fix_nullable(value)
        branches = node.get("oneOf")
        if isinstance(branches, list) and {"type": "null"} in branches:
            others = [b for b in branches if b != {"type": "null"}]
            del node["oneOf"]
            if any(_is_open(b) for b in others):
                pass  # an open schema already accepts null (and everything else)
            else:
                node["anyOf"] = [*others, {"type": "null"}]
    elif isinstance(node, list):
        for item in node:
            _fix_nullable(item)
    return node


def _binary_content(media_types: list[str]) -> dict[str, Any]:
    from litestar.openapi.spec import OpenAPIMediaType, Schema
    from litestar.openapi.spec.enums import OpenAPIType

    content = {}
    for media_type in media_types:
        text = media_type.startswith(_TEXT_TYPES)
        schema = Schema(type=OpenAPIType.STRING) if text else Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]
        content[media_type] = OpenAPIMediaType(schema=schema)
    return content


def _downloads(app: Any) -> dict[tuple[str, str], list[str]]:
    """``(path, method) -> media types`` of the handlers that declared :func:`download`."""
    from litestar.response import File

    found: dict[tuple[str, str], list[str]] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            declared = handler.opt.get("download")
            returns_file = getattr(handler.parsed_fn_signature.return_type, "annotation", None) is File
            media_type = getattr(handler.media_type, "value", handler.media_type) or ""
            if not declared and media_type and not media_type.startswith(("application/json", "text/")):
                declared = [media_type]  # e.g. media_type="application/pdf" on the decorator
            if not declared and not returns_file:
                continue
            for method in handler.http_methods:
                found[(route.path_format, method.lower())] = list(declared or ["*/*"])
    return found


def _public(app: Any) -> set[tuple[str, str]]:
    """``(path, method)`` of the handlers that work without a signed-in caller (they take no
    ``principal``): sign-in, sign-out, health, password reset."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if "principal" in handler.parsed_fn_signature.parameters:
                continue
            for method in handler.http_methods:
                found.add((route.path_format, method.lower()))
    return found


def tell_the_truth(app: Any, openapi: Any) -> Any:
    """Apply the rules of this module to ``openapi`` (the app's built schema object)."""
    from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Reference

    from tessera.api.errors import ERROR_SCHEMA_NAME

    ref = Reference(ref=f"#/components/schemas/{ERROR_SCHEMA_NAME}")
    downloads = _downloads(app)
    besides_json = {
        (route.path_format, method.lower())
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if handler.opt.get("download_besides_json")
        for method in handler.http_methods
    }
    public = _public(app)
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "put", "post", "delete", "patch"):
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses = dict(operation.responses or {})
            if (path, method) in public:
                operation.security = [{}]  # no credentials needed (the API-wide default needs them)
            media_types = downloads.get((path, method))
            if media_types and isinstance(responses.get("200"), OpenAPIResponse):
                kept = dict(responses["200"].content or {}) if (path, method) in besides_json else {}
                responses["200"].content = {**kept, **_binary_content(media_types)}
            headers = {
                p.name.lower() for p in operation.parameters or [] if getattr(p, "param_in", "") == "header"
            }
            if "if-match" in headers:
                for code, description in _PRECONDITION_DESCRIPTIONS.items():
                    responses[code] = OpenAPIResponse(
                        description=description, content={MediaType.JSON: OpenAPIMediaType(schema=ref)}
                    )
                operation.responses = dict(sorted(responses.items()))
    return openapi


def install(app: Any) -> None:
    """Make the app's OpenAPI plugin post-process the document it builds (error responses
    documented, ``tell_the_truth``, the nullable rewrite of its JSON form) — when it is first
    asked for (``/schema``, the SDK's code generator, a test), not at start-up: building it
    for some 300 routes was a third of every process's start (``tessera`` commands, workers,
    each server) that never served ``/schema``."""
    from litestar._openapi.plugin import OpenAPIPlugin

    plugin = app.plugins.get(OpenAPIPlugin)
    plugin.__class__ = _postprocessing_plugin(type(plugin))


@functools.cache
def _postprocessing_plugin(base: type[Any]) -> type[Any]:
    """Litestar's OpenAPI plugin class with our post-processing added (one subclass per base;
    no new slots, so an existing plugin object can take the class)."""
    if getattr(base, "_tessera_postprocessing", False):
        return base

    class PostProcessingOpenAPIPlugin(base):  # type: ignore[misc,valid-type]
        __slots__ = ()
        _tessera_postprocessing = True

        def _build_openapi(self) -> Any:
            from tessera.api.errors import document_errors

            document = super()._build_openapi()
            document_errors(document)
            tell_the_truth(self.app, document)
            return document

        def provide_openapi_schema(self) -> dict[str, Any]:
            if not self._openapi_schema:
                self._openapi_schema = _fix_nullable(self.provide_openapi().to_schema())
            return self._openapi_schema  # type: ignore[no-any-return]

    return PostProcessingOpenAPIPlugin

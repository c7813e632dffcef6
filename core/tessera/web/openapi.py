"""The OpenAPI pages without a CDN and without inline script: ``/schema`` (Redoc) and
``/schema/swagger`` (Swagger UI) are small HTML pages that load the viewers vendored in
``static/openapi/`` (see the README there) and a start-up script from the same folder; the
document itself is ``/schema/openapi.json`` (and ``.yaml``). Litestar's own render plugins
load their scripts from jsdelivr and start them with an inline ``<script>``, which the pages'
Content-Security-Policy refuses."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import msgspec
import yaml  # PyYAML: a dependency of litestar (its YAML render plugin)
from litestar import Request, Router
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin
from litestar.serialization import get_serializer
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/static"
ASSETS = f"{STATIC_PATH}/openapi"


class _LocalPage(OpenAPIRenderPlugin):
    """An HTML page that loads ``scripts`` / ``styles`` from the package and finds the OpenAPI
    document's URL in ``data-spec-url`` on the element with id ``root_id``."""

    def __init__(self, *, path: str | list[str], root_id: str, scripts: list[str], styles: list[str]) -> None:
        super().__init__(path=path, favicon="", style="")
        self.root_id = root_id
        self.scripts = scripts
        self.styles = styles

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema.get("info", {}).get("title", "API")))
        spec_url = escape(self.get_openapi_json_route(request))
        links = "".join(f'<link rel="stylesheet" href="{escape(href)}">' for href in self.styles)
        scripts = "".join(f'<script src="{escape(src)}" defer></script>' for src in self.scripts)
        return (
            "<!doctype html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title>{links}{scripts}</head>"
            f'<body><div id="{self.root_id}" data-spec-url="{spec_url}"></div></body></html>\n'
        ).encode()


class _Yaml(YamlRenderPlugin):
    """The document as YAML, written by libyaml (PyYAML's C emitter) once per app: Litestar's
    plugin ran the pure-Python emitter on every request, seconds for this schema (the route
    walk of tests/test_web_security.py spent a third of its time there)."""

    _cached: tuple[dict[str, Any], bytes] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._cached is not None and self._cached[0] is openapi_schema:
            return self._cached[1]
        data = msgspec.to_builtins(
            openapi_schema, enc_hook=get_serializer(request.route_handler.resolve_type_encoders())
        )
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        rendered = yaml.dump(data, Dumper=dumper, default_flow_style=False).encode("utf-8")
        self._cached = (openapi_schema, rendered)
        return rendered


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Redoc at ``/schema`` and ``/schema/redoc``, Swagger UI at ``/schema/swagger``, and the
    document as JSON and YAML."""
    return [
        _LocalPage(
            path=["/", "/redoc"],
            root_id="redoc",
            scripts=[f"{ASSETS}/redoc.standalone.js", f"{ASSETS}/redoc-init.js"],
            styles=[],
        ),
        _LocalPage(
            path="/swagger",
            root_id="swagger-ui",
            scripts=[f"{ASSETS}/swagger-ui-bundle.js", f"{ASSETS}/swagger-init.js"],
            styles=[f"{ASSETS}/swagger-ui.css"],
        ),
        JsonRenderPlugin(),
        _Yaml(),
    ]


def static_router() -> Router:
    """The package's static files (the OpenAPI viewers) under ``/static/``."""
    return create_static_files_router(
        path=STATIC_PATH, directories=[STATIC_DIR], include_in_schema=False, name="static"
    )


__all__ = ["ASSETS", "STATIC_DIR", "render_plugins", "static_router"]

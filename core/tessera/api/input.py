"""Request input checks every route inherits (kernel and plugins alike): one ASGI middleware
installed on the app, so no router or handler can opt out by accident.

Before a handler's JSON body is decoded:

* the body must be there when the handler needs one (400 "the request body is missing",
  instead of Litestar's message naming its internal ``data`` parameter);
* it must be UTF-8 (400) and nested at most :data:`MAX_JSON_DEPTH` levels (400): a body of
  thousands of ``[`` would otherwise make the decoder, or any recursive code after it, raise
  ``RecursionError`` (a 500). Size is capped by Litestar's ``request_max_body_size`` (413);
* required text (a ``str`` field declared with ``min_length`` >= 1 in the body's msgspec
  struct, at any depth) is trimmed, and refused with 422 "must not be blank" when nothing but
  whitespace is left. Secrets (fields named ``*password*``) are not trimmed, only checked.

And on every JSON API route (``/api/...``), a query parameter the route does not declare (itself
or through a dependency such as the list filters) is a 400 naming it, so a misspelt filter
(``?relations=`` for ``?relation=``) is reported instead of silently matching everything. HTML
pages are not checked: a browser link may carry parameters meant for something else.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import msgspec.inspect as mi
from litestar.connection import Request
from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.utils.scope.state import ScopeState

from tessera.errors import DomainError, FieldError, ValidationFailed

#: Deepest JSON nesting a request body may have (the deepest real body, a workflow template,
#: is about 8 levels).
MAX_JSON_DEPTH = 64

_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_INNERMOST = re.compile(rb"\[\]|\{\}")


class BadBody(ClientException):
    """A 400 on the body itself (the error translator names the field ``body``)."""


class UnknownQuery(DomainError):
    """A query parameter the route does not take (400)."""

    status = 400


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests deeper than ``limit``, found without decoding it (the
    decoder is what would overflow). Strings are removed first, then innermost ``[]``/``{}``
    pairs once per level: after ``limit`` passes a balanced body is empty."""
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", body))
    for _ in range(limit):
        if not brackets:
            return False
        brackets, removed = _INNERMOST.subn(b"", brackets)
        if not removed:
            return False  # unbalanced: not JSON, which the decoder reports
    return bool(_INNERMOST.search(brackets))


# --------------------------------------------------------------------------- required text


def _is_secret(name: str) -> bool:
    return "password" in name.lower()


def _clean(value: Any, info: Any, path: str, errors: list[FieldError], secret: bool = False) -> Any:
    """``value`` (decoded JSON) with required text trimmed, following the msgspec type ``info``;
    blank required text is added to ``errors``."""
    if isinstance(info, mi.UnionType):
        for option in info.types:
            if _fits(value, option):
                return _clean(value, option, path, errors, secret)
        return value
    if isinstance(info, mi.StrType):
        if isinstance(value, str) and (info.min_length or 0) >= 1:
            stripped = value.strip()
            if not stripped:
                errors.append(FieldError(path or "body", "must not be blank"))
            elif not secret:
                return stripped
        return value
    if isinstance(info, mi.StructType | mi.DataclassType | mi.TypedDictType) and isinstance(value, dict):
        out = dict(value)
        for field in info.fields:
            key = getattr(field, "encode_name", field.name)
            if key in out:
                child = f"{path}.{key}" if path else key
                out[key] = _clean(out[key], field.type, child, errors, _is_secret(key))
        return out
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType) and isinstance(
        value, list
    ):
        return [
            _clean(item, info.item_type, f"{path}.{i}" if path else str(i), errors, secret)
            for i, item in enumerate(value)
        ]
    if isinstance(info, mi.DictType) and isinstance(value, dict):
        return {
            k: _clean(v, info.value_type, f"{path}.{k}" if path else str(k), errors, secret)
            for k, v in value.items()
        }
    return value


def _fits(value: Any, info: Any) -> bool:
    if isinstance(value, str):
        return isinstance(info, mi.StrType)
    if isinstance(value, dict):
        return isinstance(info, mi.StructType | mi.DataclassType | mi.TypedDictType | mi.DictType)
    if isinstance(value, list):
        return isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType)
    return False


def _has_required_text(info: Any, seen: set[int] | None = None) -> bool:
    seen = set() if seen is None else seen
    if id(info) in seen:
        return False
    seen.add(id(info))
    if isinstance(info, mi.StrType):
        return (info.min_length or 0) >= 1
    if isinstance(info, mi.UnionType):
        return any(_has_required_text(t, seen) for t in info.types)
    if isinstance(info, mi.StructType | mi.DataclassType | mi.TypedDictType):
        return any(_has_required_text(f.type, seen) for f in info.fields)
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return _has_required_text(info.item_type, seen)
    if isinstance(info, mi.DictType):
        return _has_required_text(info.value_type, seen)
    return False


# --------------------------------------------------------------------------- what a handler takes


class _Expects:
    """What one route handler reads from a request (computed once per handler)."""

    __slots__ = ("any_query", "body_optional", "decode", "json_body", "query_names", "text_info")

    def __init__(self, handler: Any, path_params: set[str]) -> None:
        self.json_body = self.decode = self.body_optional = False
        self.text_info: Any = None
        self.query_names: set[str] = set()
        self.any_query = True
        try:
            model = handler.create_kwargs_model(path_parameters=dict.fromkeys(path_params))
        except Exception:  # not a handler with a signature (a mounted ASGI app): nothing to check
            return
        reserved = model.expected_reserved_kwargs
        #: The handler decodes its body as JSON (with or without a DTO).
        self.json_body = (
            "data" in reserved and model.expected_form_data is None and model.expected_msgpack_data is None
        )
        #: ... straight into its ``data`` type, so the body can be decoded here, once.
        self.decode = self.json_body and model.expected_data_dto is None
        self.body_optional = bool(model.is_data_optional)
        data = handler.parsed_fn_signature.parameters.get("data")
        if self.decode and data is not None:
            try:
                info = mi.type_info(data.annotation)
            except Exception:  # a type msgspec cannot describe: nothing to trim
                info = None
            if info is not None and _has_required_text(info):
                self.text_info = info
        self.query_names = {p.field_alias for p in model.expected_query_params}
        # A handler taking the whole query (``query``), or marked with
        # ``opt={"any_query_params": True}``, reads what it likes.
        self.any_query = "query" in reserved or bool(handler.opt.get("any_query_params"))


_EXPECTS: dict[tuple[int, frozenset[str]], tuple[Any, _Expects]] = {}


def _expects(scope: Scope) -> _Expects:
    handler = scope["route_handler"]
    params = frozenset(scope.get("path_params", {}))
    key = (id(handler), params)
    found = _EXPECTS.get(key)
    if found is None or found[0] is not handler:  # (an id is reused once its handler is gone)
        found = _EXPECTS[key] = (handler, _Expects(handler, set(params)))
    return found[1]


# --------------------------------------------------------------------------- the middleware


def check_query(request: Request[Any, Any, Any], expects: _Expects) -> None:
    if expects.any_query:
        return
    unknown = sorted({k for k in request.query_params if k not in expects.query_names})
    if unknown:
        known = ", ".join(sorted(expects.query_names)) or "none"
        raise UnknownQuery(
            f"Unknown query parameter(s): {', '.join(unknown)} (this route takes: {known})",
            [FieldError(name, "is not a parameter of this route") for name in unknown],
        )


async def check_body(request: Request[Any, Any, Any], scope: Scope, expects: _Expects) -> None:
    body = await request.body()
    if not body.strip():
        if expects.body_optional:
            return
        raise BadBody("The request body is missing: send a JSON object")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBody(f"The request body is not valid UTF-8 (byte {exc.start})") from None
    if json_depth_exceeds(body):
        raise BadBody(f"The request body is nested deeper than {MAX_JSON_DEPTH} levels")
    if not expects.decode:
        return
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return  # not JSON: the handler's decoder reports it
    state = ScopeState.from_scope(scope)
    if expects.text_info is not None:
        errors: list[FieldError] = []
        cleaned = _clean(decoded, expects.text_info, "", errors)
        if errors:
            raise ValidationFailed(
                "Validation failed: " + "; ".join(f"{e.field}: {e.message}" for e in errors), errors
            )
        if cleaned != decoded:
            state.body = msgspec.json.encode(cleaned)
            decoded = cleaned
    # Decoded once: Litestar's ``request.json()`` takes it from here.
    state.json = decoded


class InputGuard(ASGIMiddleware):
    """The checks above, on every HTTP request of every route."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        expects = _expects(scope)
        request: Request[Any, Any, Any] = Request(scope, receive)
        method = scope.get("method")
        if scope["path"].startswith("/api/") and method != "OPTIONS":  # not a CORS preflight
            check_query(request, expects)
        if expects.json_body and method not in ("GET", "HEAD", "OPTIONS"):
            await check_body(request, scope, expects)
        await next_app(scope, receive, send)

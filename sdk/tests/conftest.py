"""Test helpers of the SDK: a flaky HTTP proxy in front of the live server, so retries and
idempotency are exercised over real sockets (a lost response, a 429, a 503)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from tessera_sdk.live import LiveServer


@dataclass
class FlakyProxy:
    """Forwards to ``target``; each request first consumes one planned fault:

    * ``"503"`` / ``"429"`` — answer that status without forwarding;
    * ``"lose-503"`` — forward, then throw the server's answer away and say 503 (the
      "did my create happen?" case that idempotency keys exist for).
    """

    target: str
    faults: list[str] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.lower() != b"host"]
        self.seen.append(
            {
                "method": scope["method"],
                "path": scope["path"],
                "headers": dict((k.lower(), v) for k, v in headers),
            }
        )
        fault = self.faults.pop(0) if self.faults else ""
        if fault in ("503", "429"):
            await self._answer(
                send,
                int(fault),
                b'{"status": %s, "detail": "planned fault", "errors": []}' % fault.encode(),
                [("retry-after", "0")],
            )
            return
        async with httpx.AsyncClient(base_url=self.target) as client:
            query = scope.get("query_string", b"").decode()
            response = await client.request(
                scope["method"], scope["path"] + (f"?{query}" if query else ""), headers=headers, content=body
            )
        if fault == "lose-503":
            await self._answer(send, 503, b'{"status": 503, "detail": "answer lost", "errors": []}', [])
            return
        passthrough = [
            (k, v)
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "content-encoding", "connection")
        ]
        await self._answer(send, response.status_code, response.content, passthrough)

    @staticmethod
    async def _answer(send: Any, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        raw = [(k.encode(), v.encode()) for k, v in headers]
        raw.append((b"content-length", str(len(body)).encode()))
        if not any(k.lower() == "content-type" for k, _ in headers):
            raw.append((b"content-type", b"application/json"))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def flaky_proxy(live_server: LiveServer) -> Iterator[FlakyProxy]:
    """A ``FlakyProxy`` to the live server, served by uvicorn in a thread on a free port."""
    proxy = FlakyProxy(target=live_server.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    proxy.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(proxy, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    try:
        yield proxy
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()

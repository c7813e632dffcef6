"""A real Tessera server in a child process, on a free loopback port: what SDK and
end-to-end tests talk to (``live_server`` fixture), so they cross a real socket and a real
ASGI server instead of an in-process shortcut."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from tessera_sdk.client import AsyncClient, Client, RetryPolicy


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """``tessera serve`` on 127.0.0.1 for an already migrated database.

    :param database_url: the database the server uses (tests share it with the test process).
    :param data_dir: the server's data directory (attachments, search index).
    :param plugins: the plugins to enable (none: the kernel alone).
    """

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        plugins: Iterable[str] = (),
        start_timeout: float = 120.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.database_url = database_url
        self.data_dir = Path(data_dir)
        self.plugins = tuple(plugins)
        self.start_timeout = start_timeout
        self.extra_env = env or {}
        self.host = "127.0.0.1"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "live-server.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key in [k for k in env if k.startswith("TESSERA_")]:
            del env[key]
        env.update(
            {
                "TESSERA_CONFIG": str(self.data_dir / "absent-tessera.toml"),
                "TESSERA_DATA_DIR": str(self.data_dir),
                "TESSERA_DATABASE_URL": self.database_url,
                "TESSERA_PLUGINS": ",".join(self.plugins),
                "TESSERA_SECURE_COOKIES": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _command(self) -> list[str]:
        serve = ["serve", "--no-migrate", "--host", self.host, "--port", str(self.port)]
        return [sys.executable, "-m", "tessera.cli", *serve]

    def start(self) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _ in range(3):  # a port taken between free_port() and bind: try another
            self.port = free_port(self.host)
            with self.log_path.open("wb") as log:
                self.process = subprocess.Popen(
                    self._command(),
                    env=self._env(),
                    cwd=self.data_dir,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready():
                return self
            last_error = self.log_path.read_text(errors="replace")
            self.stop()
            if "address already in use" not in last_error.lower():
                break
        raise RuntimeError(f"the Tessera server did not start:\n{last_error[-4000:]}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, token: str | None = None, **kwargs: Any) -> Client:
        kwargs.setdefault("retry", RetryPolicy(max_retries=3, backoff=0.05, max_backoff=1.0))
        return Client(self.url, token, **kwargs)

    def async_client(self, token: str | None = None, **kwargs: Any) -> AsyncClient:
        kwargs.setdefault("retry", RetryPolicy(max_retries=3, backoff=0.05, max_backoff=1.0))
        return AsyncClient(self.url, token, **kwargs)


__all__ = ["LiveServer", "free_port"]

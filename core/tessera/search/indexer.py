"""The whoosh indexing process: a child of the server process that applies index changes.

Analysing and writing documents is pure Python; in the serving process it held the interpreter
lock for about half of a create's time while the machine's other cores sat idle. The server
sends each batch (``call``) to one long-lived child over a pipe and waits for its answer, so
an acknowledged write is still searchable at once. The child is a plain subprocess (``python -m
tessera.search.indexer_child``): it never re-imports the server's main module (multiprocessing's
``spawn`` does), and it ends when the pipe closes, also when the server was killed.

Messages are length-prefixed pickles between two processes of the same installation. This module
is the server's side and the wire format; the child's loop is in ``indexer_child``, which imports
the whoosh backend (the backend imports this module: neither imports the other back).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from tessera.search.documents import Document

_HEADER = 8


class IndexerFailed(RuntimeError):
    """The indexing process failed a batch or died (the batch is retried from the search queue)."""


def send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(_HEADER, "big") + data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER)
    if len(header) < _HEADER:
        raise EOFError
    size = int.from_bytes(header, "big")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class _Child:
    def __init__(self) -> None:
        env = dict(os.environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tessera.search.indexer_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def call(self, message: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        send(self.process.stdin, message)
        return receive(self.process.stdout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


_lock = threading.Lock()
_child: list[_Child] = []


def call(
    directory: str, sources: Sequence[str], docs: Sequence[Document], stamp: float, lock_timeout: float
) -> None:
    """Apply one batch in the indexing process (started on first use, restarted after it died);
    ``lock_timeout``: how long it waits for the index's write lock (the server's
    ``whoosh_backend.WRITE_LOCK_TIMEOUT``). Blocking: run it in a thread."""
    with _lock:
        if not _child or _child[0].process.poll() is not None:
            _child[:] = [_Child()]
        try:
            status, detail = _child[0].call((directory, sources, docs, stamp, lock_timeout))
        except (OSError, EOFError) as exc:
            _child.pop().stop()
            raise IndexerFailed(f"the indexing process died: {exc!r}") from exc
    if status != "ok":
        raise IndexerFailed(detail)

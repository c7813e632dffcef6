"""The whoosh indexing process itself (``python -m tessera.search.indexer_child``): applies the
batches that ``tessera.search.indexer.call`` sends it until the server closes the pipe."""

from __future__ import annotations

import signal
import sys

from tessera.search import whoosh_backend
from tessera.search.indexer import receive, send


def main() -> None:
    """The child: apply batches until the server closes the pipe."""
    # Ctrl-C in a terminal reaches the whole process group: the server stops, and this
    # process then ends when the pipe closes (instead of printing a KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries answers only
    while True:
        try:
            directory, sources, docs, stamp, lock_timeout = receive(requests)
        except EOFError:
            return
        # The server's setting, sent with each batch (a test shortens it in the server's process).
        whoosh_backend.WRITE_LOCK_TIMEOUT = lock_timeout
        try:
            whoosh_backend.replace_at(directory, sources, docs, stamp)
            answer: tuple[str, str] = ("ok", "")
        except Exception as exc:
            answer = ("error", repr(exc))
        try:
            send(answers, answer)
        except OSError:  # the server is gone (killed while we worked): nobody to answer
            return


if __name__ == "__main__":
    main()

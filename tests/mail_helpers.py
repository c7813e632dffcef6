"""A real SMTP server for tests (aiosmtpd on a free loopback port) that records what it got.
Used by tests/test_email.py (STARTTLS + AUTH) and tests/test_password_pages.py (plain)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import LoginPassword


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class MailServer:
    """What the test SMTP server received, and the replies it is told to give."""

    port: int = 0
    received: list[tuple[list[str], EmailMessage, str | None]] = field(default_factory=list)
    #: Replies to DATA, used up one per message; then "250 OK".
    replies: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        message = message_from_bytes(envelope.content.replace(b"\r\n", b"\n"), policy=policy.default)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.received.append((list(envelope.rcpt_tos), message, login))  # type: ignore[arg-type]
        return "250 OK"

"""A real IMAP server for tests: Debian's dovecot (``dovecot-imapd``) started unprivileged with a
temporary configuration (loopback, free ports, users from a passwd-file, Maildir in the temp
dir, log to a file), STARTTLS on the plain port and implicit TLS on a second one with a
throwaway CA (trustme). Messages are put in a mailbox with IMAP APPEND (stdlib imaplib), as a
mail delivery would. Used by tests/test_mail_in.py (like tests/mail_helpers.py for SMTP).

Without dovecot a test using the fixture is skipped with a message, except in CI
(``CRM_TEST_POSTGRES`` set), where a missing server is a failure: ``.ci/run`` installs it.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
PASSWORD = "imap-Pa55word-secret"


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class Dovecot:
    """A running dovecot: its ports, users (password ``PASSWORD``) and CA file."""

    root: Path
    port: int
    ssl_port: int
    ca_file: str
    users: list[str]
    process: subprocess.Popen[bytes] | None = None
    log_file: Path = field(default_factory=Path)

    def connect(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port)
        conn.login(user, PASSWORD)
        return conn

    def append(self, user: str, message: EmailMessage | bytes, folder: str = "INBOX") -> None:
        """Deliver a message into ``user``'s ``folder`` (IMAP APPEND)."""
        raw = message if isinstance(message, bytes) else message.as_bytes()
        conn = self.connect(user)
        try:
            if folder != "INBOX":
                conn.create(folder)
            typ, data = conn.append(folder, "", imaplib.Time2Internaldate(time.time()), raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def message_file(self, user: str, uid: int) -> Path:
        """The Maildir file of ``user``'s INBOX message ``uid`` (to break it on purpose)."""
        folder = self.root / "mail" / user
        for line in (folder / "dovecot-uidlist").read_text().splitlines()[1:]:
            number, _, name = line.partition(" :")
            if number == str(uid):
                return next(p for sub in ("cur", "new") for p in (folder / sub).glob(name + "*"))
        raise LookupError(f"no UID {uid} for {user}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


def message(
    sender: str,
    to: str,
    subject: str,
    text: str,
    *,
    html: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    attachments: list[tuple[str, bytes, str]] = (),  # type: ignore[assignment]
    cc: str | None = None,
) -> EmailMessage:
    """A message as a mail client would write it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(__import__("datetime").datetime.now(__import__("datetime").UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="client.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    for filename, content, mime in attachments:
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def _config(root: Path, port: int, ssl_port: int, cert: Path, key: Path, uid: int, gid: int) -> str:
    me = pwd.getpwuid(os.getuid()).pw_name
    running_as_root = os.getuid() == 0
    # As root, dovecot drops privileges: its own processes run as the packaged users and mail
    # is read as the ``dovecot`` user (root may not own mail). As anyone else, everything runs
    # as that user.
    internal = "dovecot" if running_as_root else me
    login = "dovenull" if running_as_root else me
    return f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = tessera-test-{port}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login}
first_valid_uid = {min(uid, 1)}
first_valid_gid = 0
disable_plaintext_auth = no
auth_mechanisms = plain login
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
mail_location = maildir:{root}/mail/%u
mail_uid = {uid}
mail_gid = {gid}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def start_dovecot(users: list[str]) -> Dovecot:
    """Start dovecot in a fresh temp dir; raises RuntimeError (with its log) if it will not."""
    import trustme

    assert DOVECOT
    root = Path(tempfile.mkdtemp(prefix="tessera-dovecot-"))
    root.chmod(0o755)  # the mail user (``dovecot`` when run as root) walks into it
    authority = trustme.CA()
    cert, key, ca = root / "cert.pem", root / "key.pem", root / "ca.pem"
    issued = authority.issue_cert("localhost", "127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    if os.getuid() == 0:
        account = pwd.getpwnam("dovecot")
        uid, gid = account.pw_uid, account.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    (root / "mail").mkdir()
    for name in ("run", "state"):
        (root / name).mkdir()
    os.chown(root / "mail", uid, gid)
    (root / "passwd").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}::::::\n" for u in users))
    port, ssl_port = _free_ports(2)
    conf = root / "dovecot.conf"
    conf.write_text(_config(root, port, ssl_port, cert, key, uid, gid))
    server = Dovecot(root=root, port=port, ssl_port=ssl_port, ca_file=str(ca), users=users)
    server.log_file = root / "dovecot.log"
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    server.process = process
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"dovecot exited ({process.returncode}): {output}\n{server.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(100).startswith(b"* OK"):
                    return server
        except OSError:
            time.sleep(0.1)
    stop_dovecot(server)
    raise RuntimeError(f"dovecot did not answer on port {port}:\n{server.log()}")


def stop_dovecot(server: Dovecot) -> None:
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    shutil.rmtree(server.root, ignore_errors=True)


def dovecot_fixture(users: list[str]) -> Iterator[Dovecot]:
    """Body of a fixture: skip without dovecot outside CI, fail in CI."""
    if DOVECOT is None:
        if os.environ.get("CRM_TEST_POSTGRES"):
            pytest.fail("dovecot is not installed (apt-get install dovecot-imapd; .ci/run does it)")
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd) - IMAP tests skipped")
    server = start_dovecot(users)
    try:
        yield server
    finally:
        stop_dovecot(server)


def tls_client_context(server: Dovecot) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=server.ca_file)


__all__ = ["PASSWORD", "Dovecot", "dovecot_fixture", "message", "start_dovecot", "stop_dovecot"]
_ = Any

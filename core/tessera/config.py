"""Settings: environment variables ``TESSERA_*`` override the file ``tessera.toml``.

One ``Settings`` object is built per process (or per test) and passed explicitly; nothing
reads the environment after start-up, so tests can run several configurations side by side.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ALL_PLUGINS = "all"
IMAP_SECURITY = ("ssl", "starttls", "none")


@dataclass(frozen=True)
class ImapMailbox:
    """One IMAP mailbox the worker polls for incoming e-mail (tessera.mail_in,
    docs/integrations.md, "E-mail in (IMAP)"). The password is never logged nor returned by an
    endpoint (``repr=False``); set it in the environment as ``TESSERA_IMAP_<NAME>_PASSWORD``."""

    #: Short name (``support``, ``sales``): the checkpoint's key and what plugins see.
    name: str
    host: str
    username: str
    password: str = field(default="", repr=False)
    #: 0: 993 for ``ssl``, 143 for ``starttls`` and ``none``.
    port: int = 0
    #: ``ssl`` (implicit TLS), ``starttls`` (upgrade, refused if the server does not offer it)
    #: or ``none`` (plain: a server on the same host, tests).
    security: str = "ssl"
    folder: str = "INBOX"
    #: What the mailbox is for (``support``: a service plugin turns its messages into tickets).
    role: str = "general"
    #: The mailbox's own addresses: never matched to parties (default: the username if it is
    #: an address).
    addresses: tuple[str, ...] = ()
    ca_file: str = ""
    timeout: float = 30.0
    #: Messages fetched per poll at most (the rest next time; the checkpoint moves per message).
    batch: int = 200
    #: A larger message is not fetched but quarantined (listed with the reason), so one huge
    #: message never stops a mailbox; raise the limit and retry it from the quarantine.
    max_message_bytes: int = 100 * 1024 * 1024

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)

    @property
    def own_addresses(self) -> frozenset[str]:
        own = {a.strip().lower() for a in self.addresses if a.strip()}
        if not own and "@" in self.username:
            own.add(self.username.strip().lower())
        return frozenset(own)


def _mailbox(value: dict[str, Any], env: dict[str, str]) -> ImapMailbox:
    if not isinstance(value, dict):
        raise ValueError("imap_mailboxes: each mailbox is a table (name, host, username ...)")
    known = set(ImapMailbox.__dataclass_fields__)
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"imap_mailboxes: unknown setting(s) {', '.join(sorted(unknown))}")
    for needed in ("name", "host", "username"):
        if not str(value.get(needed) or "").strip():
            raise ValueError(f"imap_mailboxes: every mailbox needs {needed!r}")
    name = str(value["name"]).strip()
    if not all(ch.isalnum() or ch in "_-" for ch in name) or len(name) > 100:
        raise ValueError(f"imap_mailboxes: name {name!r} may hold letters, digits, '_' and '-' only")
    security = value.get("security", "ssl")
    if security not in IMAP_SECURITY:
        raise ValueError(
            f"imap_mailboxes: security of {name!r} must be 'ssl', 'starttls' or 'none', not {security!r}"
        )
    kwargs = dict(value, name=name, addresses=tuple(value.get("addresses") or ()))
    variable = f"TESSERA_IMAP_{name.upper().replace('-', '_')}_PASSWORD"
    if variable in env:
        kwargs["password"] = env[variable]
    return ImapMailbox(**kwargs)


@dataclass(frozen=True)
class Telephony:
    """The PBX link (tessera.telephony, docs/integrations.md, "Telephony"): an Asterisk AMI
    connection run by ``tessera worker`` and/or the ``POST /api/telephony/events`` webhook of a
    cloud PBX. Secrets come from the environment (``TESSERA_AMI_SECRET``,
    ``TESSERA_TELEPHONY_WEBHOOK_SECRET``) and are never logged nor returned (``repr=False``)."""

    #: Asterisk's manager interface; empty: no AMI connection (the webhook may still be used).
    ami_host: str = ""
    ami_port: int = 5038
    ami_username: str = ""
    ami_secret: str = field(default="", repr=False)
    #: Dialplan context of ``Originate`` for click-to-call (the user's phone rings first, then
    #: the number is dialled from it).
    originate_context: str = "from-internal"
    #: Channel technology of users' extensions in ``Originate`` (``PJSIP/101``).
    extension_channel: str = "PJSIP"
    #: A caller id with at most this many digits is an internal extension, not a customer.
    internal_max_digits: int = 5
    #: Region for numbers written without a country code (``8 (495) ...`` in RU).
    region: str = "RU"
    #: Link to a call's recording: ``{file}`` (MixMonitor's file name), ``{call_id}``;
    #: empty: recordings are not linked.
    recording_url: str = ""
    #: Shared secret of ``POST /api/telephony/events`` (header ``X-Tessera-Telephony-Secret``);
    #: empty: the webhook answers 404.
    webhook_secret: str = field(default="", repr=False)
    #: Hours a call-back task for a missed call is due in.
    callback_hours: float = 2.0
    #: Seconds of the longest pause between reconnection attempts (they start at 1 s, doubling).
    reconnect_max_seconds: float = 30.0
    timeout: float = 10.0


def _telephony(value: dict[str, Any], env: dict[str, str]) -> Telephony:
    if not isinstance(value, dict):
        raise ValueError("telephony: a table of settings ([tessera.telephony])")
    unknown = set(value) - set(Telephony.__dataclass_fields__)
    if unknown:
        raise ValueError(f"telephony: unknown setting(s) {', '.join(sorted(unknown))}")
    kwargs = dict(value)
    if "TESSERA_AMI_SECRET" in env:
        kwargs["ami_secret"] = env["TESSERA_AMI_SECRET"]
    if "TESSERA_TELEPHONY_WEBHOOK_SECRET" in env:
        kwargs["webhook_secret"] = env["TESSERA_TELEPHONY_WEBHOOK_SECRET"]
    if kwargs.get("ami_host") and not kwargs.get("ami_username"):
        raise ValueError("telephony: ami_host needs ami_username")
    return Telephony(**kwargs)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    #: ``sqlite:///path`` (default, inside data_dir) or ``postgresql://user@host:port/db``.
    database_url: str = ""
    #: Names of enabled plugins, or ``("all",)`` for every installed one.
    plugins: tuple[str, ...] = (ALL_PLUGINS,)
    #: ``whoosh`` (embedded index in data_dir) or ``postgres`` (PostgreSQL full-text search).
    search_backend: str = "whoosh"
    #: Mark session cookies Secure; on by default, the demo turns it off for plain http://localhost.
    secure_cookies: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    #: Seconds a web session stays valid after sign-in at most (absolute; the user signs in again).
    session_ttl: int = 8 * 3600
    #: Seconds a web session survives without being used (sliding: each request extends it).
    session_idle: int = 3600
    #: Load plugins from entry points; tests switch it off and pass plugin objects directly.
    autoload_plugins: bool = True
    #: Failed logins before a temporary lockout, and the lockout length in seconds.
    login_max_failures: int = 5
    login_lockout_seconds: int = 900
    #: Failed logins for one login from any address before that login is locked out.
    login_max_failures_any_address: int = 50
    #: argon2id cost of password hashes: passes, memory (KiB) and lanes. The default is RFC
    #: 9106's second recommended option (argon2-cffi's). A hash keeps the parameters it was
    #: made with; a sign-in re-hashes a password whose hash has others (docs/security.md).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    #: Rows one export may return before it is refused (seed 003: a departing manager must not
    #: silently download the whole base).
    export_row_limit: int = 10_000
    #: Changes and deletes of versioned records must carry a precondition (``If-Match``, or
    #: ``version`` in a PATCH body); without one they answer 428 (RFC 6585).
    require_preconditions: bool = False
    #: Seconds a password reset token stays valid (it works once).
    password_reset_ttl: int = 3600
    #: Addresses or networks (``10.0.0.5``, ``10.0.0.0/8``) of the reverse proxies whose
    #: ``X-Forwarded-For`` names the client. Empty (the default): the header is ignored and the
    #: client is the connection's peer, whoever sends it (docs/security.md, "Client address").
    trusted_proxies: tuple[str, ...] = ()
    #: Outgoing e-mail (tessera.email, docs/integrations.md). No host: sending jobs fail with
    #: "SMTP is not configured" (an admin retries them once it is). Port 0: 25, 587 or 465 by
    #: ``smtp_security`` (``none``, ``starttls`` or ``ssl``). The password is never logged and
    #: never returned by an endpoint (``repr=False``; env ``TESSERA_SMTP_PASSWORD``).
    smtp_host: str = ""
    smtp_port: int = 0
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    #: CA bundle for a mail server whose certificate a private CA signed (default: system CAs).
    smtp_ca_file: str = ""
    smtp_timeout: float = 30.0
    #: The From address of messages the CRM sends (``CRM <crm@example.com>``).
    mail_from: str = ""
    #: The address people reach this deployment at (``https://crm.example.com``), for links in
    #: messages the CRM sends (the password reset link). Empty: the base URL of the request
    #: that caused the message (env ``TESSERA_PUBLIC_URL``).
    public_url: str = ""
    #: Networks (``10.20.0.0/16``) outbound webhooks may reach although they are private,
    #: loopback or link-local: an intranet receiver an admin allows (docs/integrations.md,
    #: "Webhooks"). Empty (the default): only public addresses.
    webhook_allowed_networks: tuple[str, ...] = ()
    #: Language of the web UI for a user who chose none and whose browser asks for none of
    #: ``ru``, ``uk``, ``en`` (tessera.i18n, docs/i18n.md).
    default_locale: str = "en"
    #: IMAP mailboxes polled by ``tessera worker`` for incoming e-mail (tessera.mail_in): in
    #: ``tessera.toml`` as ``[[tessera.imap_mailboxes]]`` tables (docs/integrations.md).
    imap_mailboxes: tuple[ImapMailbox, ...] = ()
    #: The PBX link (tessera.telephony): ``[tessera.telephony]`` in ``tessera.toml``.
    telephony: Telephony = field(default_factory=Telephony)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'tessera.sqlite3').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.resolved_database_url.startswith(("postgres://", "postgresql://"))

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def load_settings(config_file: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read ``tessera.toml`` (or ``TESSERA_CONFIG``) and then the ``TESSERA_*`` variables."""
    env = dict(os.environ if env is None else env)
    path = Path(config_file or env.get("TESSERA_CONFIG", "tessera.toml"))
    values: dict[str, Any] = {}
    if path.is_file():
        with path.open("rb") as fh:
            values = dict(tomllib.load(fh).get("tessera", {}))
    if "TESSERA_DATA_DIR" in env:
        values["data_dir"] = env["TESSERA_DATA_DIR"]
    if "TESSERA_DATABASE_URL" in env:
        values["database_url"] = env["TESSERA_DATABASE_URL"]
    if "TESSERA_PLUGINS" in env:
        values["plugins"] = [p.strip() for p in env["TESSERA_PLUGINS"].split(",") if p.strip()]
    if "TESSERA_SEARCH" in env:
        values["search_backend"] = env["TESSERA_SEARCH"]
    for name in ("argon2_time_cost", "argon2_memory_kib", "argon2_parallelism"):
        if f"TESSERA_{name.upper()}" in env:
            values[name] = int(env[f"TESSERA_{name.upper()}"])
    if "TESSERA_SECURE_COOKIES" in env:
        values["secure_cookies"] = _bool(env["TESSERA_SECURE_COOKIES"])
    if "TESSERA_HOST" in env:
        values["host"] = env["TESSERA_HOST"]
    if "TESSERA_PORT" in env:
        values["port"] = int(env["TESSERA_PORT"])
    if "TESSERA_REQUIRE_PRECONDITIONS" in env:
        values["require_preconditions"] = _bool(env["TESSERA_REQUIRE_PRECONDITIONS"])
    if "TESSERA_TRUSTED_PROXIES" in env:
        proxies = env["TESSERA_TRUSTED_PROXIES"].split(",")
        values["trusted_proxies"] = [p.strip() for p in proxies if p.strip()]
    if "TESSERA_PUBLIC_URL" in env:
        values["public_url"] = env["TESSERA_PUBLIC_URL"]
    for name in ("smtp_host", "smtp_security", "smtp_username", "smtp_password", "smtp_ca_file", "mail_from"):
        if f"TESSERA_{name.upper()}" in env:
            values[name] = env[f"TESSERA_{name.upper()}"]
    if "TESSERA_SMTP_PORT" in env:
        values["smtp_port"] = int(env["TESSERA_SMTP_PORT"])
    if "TESSERA_WEBHOOK_ALLOWED_NETWORKS" in env:
        nets = env["TESSERA_WEBHOOK_ALLOWED_NETWORKS"].split(",")
        values["webhook_allowed_networks"] = [n.strip() for n in nets if n.strip()]
    if _bool(env.get("TESSERA_DISABLE_PLUGIN_AUTOLOAD", "")):
        values["autoload_plugins"] = False
    if "imap_mailboxes" in values:
        boxes = [_mailbox(v, env) for v in values["imap_mailboxes"] or []]
        names = [b.name for b in boxes]
        if len(set(names)) != len(names):
            raise ValueError("imap_mailboxes: two mailboxes have the same name")
        values["imap_mailboxes"] = tuple(boxes)
    if "telephony" in values or "TESSERA_AMI_SECRET" in env or "TESSERA_TELEPHONY_WEBHOOK_SECRET" in env:
        values["telephony"] = _telephony(values.get("telephony") or {}, env)
    known = set(Settings.__dataclass_fields__)
    extra = {k: v for k, v in values.items() if k not in known}
    kwargs = {k: v for k, v in values.items() if k in known}
    if "data_dir" in kwargs:
        kwargs["data_dir"] = Path(kwargs["data_dir"])
    if "plugins" in kwargs:
        kwargs["plugins"] = tuple(kwargs["plugins"])
    if "trusted_proxies" in kwargs:
        kwargs["trusted_proxies"] = tuple(str(p) for p in kwargs["trusted_proxies"])
        for proxy in kwargs["trusted_proxies"]:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {proxy!r} is not an IP address or network") from exc
    if "webhook_allowed_networks" in kwargs:
        kwargs["webhook_allowed_networks"] = tuple(str(n) for n in kwargs["webhook_allowed_networks"])
        for net in kwargs["webhook_allowed_networks"]:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"webhook_allowed_networks: {net!r} is not an IP network") from exc
    if kwargs.get("search_backend") not in (None, "whoosh", "postgres"):
        raise ValueError(f"search_backend must be 'whoosh' or 'postgres', not {kwargs['search_backend']!r}")
    if kwargs.get("smtp_security") not in (None, "none", "starttls", "ssl"):
        raise ValueError(
            f"smtp_security must be 'none', 'starttls' or 'ssl', not {kwargs['smtp_security']!r}"
        )
    if kwargs.get("public_url") and not str(kwargs["public_url"]).startswith(("http://", "https://")):
        raise ValueError(f"public_url must start with http:// or https://, not {kwargs['public_url']!r}")
    return Settings(**kwargs, extra=extra)

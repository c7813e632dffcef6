"""A small Asterisk Manager Interface (AMI) client and the link ``tessera worker`` keeps open.

AMI is plain text over TCP: the server greets with a banner line (``Asterisk Call
Manager/5.0``), then both sides exchange *messages*: ``Key: Value`` lines ending with an empty
line. The client sends ``Action: Login`` (``Username``, ``Secret``) and then actions, each with
an ``ActionID`` its ``Response`` repeats; the server sends ``Event`` messages as calls progress.
List actions (``CoreShowChannels``) answer with events carrying the same ``ActionID`` up to one
whose name ends in ``Complete``.

Written here rather than taken from panoramisk (last release 2021): the link needs exactly
login, events, two actions and reconnection, and owning them keeps reconnection and the
reconciliation after it testable end to end (tests/ami_helpers.py speaks AMI over real TCP).

``AmiLink.run`` connects, logs in, *reconciles* (``CoreShowChannels``: calls that ended while
the link was down are closed, calls in progress that it never saw are opened), then turns
events into ``CallEvent``s for ``tessera.telephony.calls.handle``. When the connection drops
(Asterisk restarts, the network fails) it connects again by itself: after 1 s, then doubling
up to ``reconnect_max_seconds``; a good login resets the pause.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tessera import clock
from tessera.config import Settings, Telephony
from tessera.telephony import calls
from tessera.telephony.calls import CallEvent

log = logging.getLogger("tessera.telephony.ami")

Message = dict[str, str]


class AmiError(Exception):
    """The PBX refused an action or the login, or could not be reached."""


def encode(fields: dict[str, Any]) -> bytes:
    lines = []
    for key, value in fields.items():
        text = str(value).replace("\r", " ").replace("\n", " ")  # one value, one line
        lines.append(f"{key}: {text}\r\n")
    return ("".join(lines) + "\r\n").encode()


async def read_message(reader: asyncio.StreamReader) -> Message:
    """The next message; raises ``ConnectionError`` when the connection closes."""
    message: Message = {}
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the AMI connection closed")
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if message:
                return message
            continue
        key, _, value = text.partition(":")
        message[key.strip()] = value.strip()


class AmiClient:
    """One AMI connection: actions with replies, and every event handed to ``on_event``."""

    def __init__(
        self,
        conf: Telephony,
        on_event: Callable[[Message], Awaitable[None]] | None = None,
    ) -> None:
        self.conf = conf
        self.on_event = on_event
        self._ids = itertools.count(1)
        self._waiting: dict[str, tuple[asyncio.Future[Message], list[Message] | None]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._events: asyncio.Queue[Message | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self.banner = ""
        #: Events wait for this (the link sets it once reconciliation is done, so a call's
        #: events never overtake what reconciliation makes of it).
        self.events_open = asyncio.Event()

    async def connect(self) -> None:
        conf = self.conf
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(conf.ami_host, conf.ami_port), conf.timeout
            )
            banner = await asyncio.wait_for(self._reader.readline(), conf.timeout)
        except (OSError, TimeoutError) as exc:
            raise AmiError(f"cannot reach the PBX at {conf.ami_host}:{conf.ami_port}: {exc}") from exc
        self.banner = banner.decode("utf-8", "replace").strip()
        if "Call Manager" not in self.banner:
            await self.close()
            raise AmiError(f"{conf.ami_host}:{conf.ami_port} is not an Asterisk manager ({self.banner!r})")
        self._tasks = [asyncio.ensure_future(self._read()), asyncio.ensure_future(self._dispatch())]
        reply = await self.action("Login", Username=conf.ami_username, Secret=conf.ami_secret)
        if reply.get("Response") != "Success":
            await self.close()
            raise AmiError(f"login as {conf.ami_username} refused: {reply.get('Message', '')}")

    async def _read(self) -> None:
        assert self._reader is not None
        try:
            while True:
                message = await read_message(self._reader)
                action_id = message.get("ActionID", "")
                waiting = self._waiting.get(action_id)
                if "Response" in message and waiting is not None:
                    future, listed = waiting
                    if listed is None or message.get("Response") != "Success":
                        self._waiting.pop(action_id, None)
                        if not future.done():
                            future.set_result(message)
                    continue
                if "Event" in message and waiting is not None and waiting[1] is not None:
                    future, listed = waiting
                    if message["Event"].endswith("Complete"):
                        self._waiting.pop(action_id, None)
                        if not future.done():
                            future.set_result({"Response": "Success", "ActionID": action_id})
                    else:
                        listed.append(message)
                    continue
                if "Event" in message:
                    self._events.put_nowait(message)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            self._fail_waiting(exc)
        finally:
            self._events.put_nowait(None)

    async def _dispatch(self) -> None:
        """Events are handled one at a time, in order, beside the reader (so an action sent from
        a handler still gets its reply)."""
        while True:
            message = await self._events.get()
            if message is None:
                return
            await self.events_open.wait()
            if self.on_event is not None:
                try:
                    await self.on_event(message)
                except Exception:  # one bad event must not stop the link
                    log.exception("AMI event %s could not be processed", message.get("Event"))

    def _fail_waiting(self, exc: BaseException) -> None:
        for future, _ in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError(f"the AMI connection closed: {exc}"))
        self._waiting.clear()

    async def action(self, name: str, **fields: Any) -> Message:
        """Send an action and wait for its ``Response``."""
        return await self._send(name, fields, listed=None)

    async def list_action(self, name: str, **fields: Any) -> list[Message]:
        """Send a list action (``CoreShowChannels``) and return the events it lists."""
        listed: list[Message] = []
        reply = await self._send(name, fields, listed=listed)
        if reply.get("Response") != "Success":
            raise AmiError(f"{name} refused: {reply.get('Message', '')}")
        return listed

    async def _send(self, name: str, fields: dict[str, Any], listed: list[Message] | None) -> Message:
        if self._writer is None:
            raise ConnectionError("not connected")
        action_id = f"tessera-{next(self._ids)}"
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[action_id] = (future, listed)
        self._writer.write(encode({"Action": name, "ActionID": action_id, **fields}))
        await self._writer.drain()
        try:
            return await asyncio.wait_for(future, self.conf.timeout)
        except TimeoutError as exc:
            self._waiting.pop(action_id, None)
            raise AmiError(f"{name}: no answer from the PBX within {self.conf.timeout:g}s") from exc

    async def wait_closed(self) -> None:
        """Until the connection drops (the reader and the event handler have finished)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        if self._writer is not None:
            with suppress(Exception):
                self._writer.write(encode({"Action": "Logoff", "ActionID": "logoff"}))
            self._writer.close()
            with suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


@asynccontextmanager
async def session(conf: Telephony) -> AsyncIterator[AmiClient]:
    """A short connection for one action (click-to-call's ``Originate``)."""
    client = AmiClient(conf)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


async def originate(conf: Telephony, extension: str, number: str, caller_id: str = "") -> Message:
    """Ring ``extension`` first, then dial ``number`` from it (``Originate``, asynchronous on
    the PBX's side: the reply says it was accepted, the call's events follow)."""
    if not conf.ami_host:
        raise AmiError("the PBX is not configured (telephony.ami_host)")
    async with session(conf) as client:
        reply = await client.action(
            "Originate",
            Channel=f"{conf.extension_channel}/{extension}",
            Context=conf.originate_context,
            Exten=number,
            Priority=1,
            CallerID=caller_id or number,
            Async="true",
        )
    if reply.get("Response") != "Success":
        raise AmiError(f"the PBX refused the call: {reply.get('Message', '')}")
    return reply


# --------------------------------------------------------------------------- AMI events -> calls


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


@dataclass
class _Call:
    direction: str
    number: str
    extension: str
    answered: bool = False


@dataclass
class CallTracker:
    """Turns Asterisk's channel events into ``CallEvent``s, one call per ``Linkedid``:

    * ``Newchannel`` of the call's first channel (``Uniqueid == Linkedid``) starts it: a caller
      id of at most ``internal_max_digits`` digits is a user's extension calling out (the
      customer is ``Exten``), any other is a customer calling in;
    * ``DialBegin`` names the extension that rings (the pop-up goes to its user);
    * ``DialEnd`` with ``DialStatus: ANSWER`` or ``BridgeEnter`` answers it;
    * ``VarSet`` of ``MIXMONITOR_FILENAME`` links the recording (``recording_url`` template);
    * ``Hangup`` of the first channel ends it.
    """

    conf: Telephony
    calls: dict[str, _Call] = field(default_factory=dict)

    def internal(self, number: str) -> bool:
        digits = _digits(number)
        return bool(digits) and len(digits) <= self.conf.internal_max_digits and digits == number.strip()

    def recording(self, filename: str, call_id: str) -> str:
        if not self.conf.recording_url or not filename:
            return ""
        name = filename.rsplit("/", 1)[-1]
        return self.conf.recording_url.format(file=name, call_id=call_id)

    def start(self, message: Message) -> CallEvent | None:
        call_id = message.get("Linkedid") or message.get("Uniqueid", "")
        caller = message.get("CallerIDNum", "")
        exten = message.get("Exten", "")
        if self.internal(caller):
            if self.internal(exten) or not exten:
                return None  # a call between colleagues is no customer's call
            call = _Call("out", exten, caller)
        else:
            call = _Call(
                "in", caller if caller not in ("<unknown>", "") else "", exten if self.internal(exten) else ""
            )
        self.calls[call_id] = call
        return CallEvent("ringing", call_id, call.direction, call.number, call.extension)

    def translate(self, message: Message) -> list[CallEvent]:
        name = message.get("Event", "")
        call_id = message.get("Linkedid") or message.get("Uniqueid", "")
        first = message.get("Uniqueid") == call_id
        if name == "Newchannel" and first and call_id not in self.calls:
            started = self.start(message)
            return [started] if started else []
        call = self.calls.get(call_id)
        if call is None:
            return []
        base = (call_id, call.direction, call.number)
        if name == "DialBegin" and call.direction == "in":
            target = message.get("DestCallerIDNum") or message.get("DestExten", "")
            if self.internal(target):
                call.extension = target
                return [CallEvent("ringing", *base, extension=target)]
        elif (name == "DialEnd" and message.get("DialStatus") == "ANSWER") or name == "BridgeEnter":
            if not call.answered:
                call.answered = True
                extension = call.extension
                if call.direction == "in" and name == "DialEnd":
                    target = message.get("DestCallerIDNum") or message.get("DestExten", "")
                    extension = target if self.internal(target) else extension
                    call.extension = extension
                return [CallEvent("answered", *base, extension=extension)]
        elif name == "VarSet" and message.get("Variable") == "MIXMONITOR_FILENAME":
            url = self.recording(message.get("Value", ""), call_id)
            if url:
                return [CallEvent("ringing", *base, extension=call.extension, recording_url=url)]
        elif name == "Hangup" and first:
            self.calls.pop(call_id, None)
            return [CallEvent("ended", *base, extension=call.extension)]
        return []


def _duration(value: str) -> timedelta:
    """``HH:MM:SS`` (CoreShowChannel's ``Duration``)."""
    try:
        hours, minutes, seconds = (int(p) for p in value.split(":"))
    except ValueError:
        return timedelta(0)
    return timedelta(hours=hours, minutes=minutes, seconds=seconds)


class AmiLink:
    """The worker's lasting connection: reconnects by itself and reconciles after each login."""

    def __init__(self, settings: Settings, reconnect_min_seconds: float = 1.0) -> None:
        self.settings = settings
        self.conf = settings.telephony
        self.tracker = CallTracker(self.conf)
        self.reconnect_min_seconds = reconnect_min_seconds
        #: What the link is doing, for logs and tests: connecting | connected | waiting.
        self.state = "connecting"
        self.last_error = ""
        self.connections = 0
        self.client: AmiClient | None = None

    async def on_event(self, message: Message) -> None:
        for event in self.tracker.translate(message):
            await calls.handle(event, self.settings)

    async def reconcile(self, client: AmiClient) -> None:
        """Bring the calls in the database in line with the PBX after a (re)connection: calls
        we hold open whose channels are gone ended while we were away (closed now: answered ones
        as calls, the others as missed calls with their call-back task); calls in progress we
        never saw are opened."""
        channels = await client.list_action("CoreShowChannels")
        active: dict[str, Message] = {}
        for channel in channels:
            call_id = channel.get("Linkedid") or channel.get("Uniqueid", "")
            if channel.get("Uniqueid") == call_id or call_id not in active:
                active[call_id] = channel
        now = clock.now()
        for call in await calls.open_calls():
            if call["source"] not in ("ami", "reconciled") or call["call_id"] in active:
                continue
            self.tracker.calls.pop(call["call_id"], None)
            await calls.handle(
                CallEvent(
                    "ended", call["call_id"], call["direction"], call["number"], at=now, source="reconciled"
                ),
                self.settings,
            )
        for call_id, channel in active.items():
            if call_id in self.tracker.calls:
                continue
            started = self.tracker.start({**channel, "Linkedid": call_id})
            if started is None:
                continue
            started.at = now - _duration(channel.get("Duration", ""))
            started.source = "reconciled"
            await calls.handle(started, self.settings)
            if channel.get("ChannelStateDesc") == "Up" and channel.get("BridgeId"):
                self.tracker.calls[call_id].answered = True
                await calls.handle(
                    CallEvent("answered", call_id, started.direction, started.number, started.extension),
                    self.settings,
                )

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set."""
        pause = self.reconnect_min_seconds
        while not stop.is_set():
            self.state = "connecting"
            client = AmiClient(self.conf, self.on_event)
            try:
                await client.connect()
                self.client = client
                self.connections += 1
                self.state = "connected"
                self.last_error = ""
                pause = self.reconnect_min_seconds
                log.info("AMI: connected to %s:%s", self.conf.ami_host, self.conf.ami_port)
                await self.reconcile(client)
                client.events_open.set()
                closed = asyncio.ensure_future(client.wait_closed())
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({closed, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                closed.cancel()
                if not stop.is_set():
                    log.warning("AMI: connection to %s lost; reconnecting", self.conf.ami_host)
            except (AmiError, ConnectionError, OSError) as exc:
                self.last_error = str(exc)
                log.warning("AMI: %s", exc)
            except Exception as exc:  # a database hiccup in reconciliation: try again later
                self.last_error = str(exc)
                log.exception("AMI link failed")
            finally:
                self.client = None
                await client.close()
            if stop.is_set():
                break
            self.state = "waiting"
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
            pause = min(pause * 2, max(self.conf.reconnect_max_seconds, self.reconnect_min_seconds))
        self.state = "stopped"


async def run_link(settings: Settings | None, stop: asyncio.Event) -> None:
    """``tessera worker``'s AMI link, when ``[tessera.telephony] ami_host`` is set."""
    if settings is None or not settings.telephony.ami_host:
        return
    await AmiLink(settings).run(stop)

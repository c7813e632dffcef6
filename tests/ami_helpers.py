"""A small Asterisk Manager Interface server for the tests, over real TCP on loopback: the
banner, ``Action: Login`` (checks the secret), ``CoreShowChannels`` (lists the channels the test
says are up), ``Originate`` (recorded, answered Success), ``Logoff``; and events the test pushes
to every logged-in client. ``restart()`` drops every connection and listens again on the same
port, as an Asterisk restart does."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

BANNER = b"Asterisk Call Manager/5.0.1\r\n"


def _encode(fields: dict[str, Any]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()


class AmiServer:
    def __init__(self, username: str = "crm", secret: str = "s3cret") -> None:
        self.username, self.secret = username, secret
        self.port = 0
        self.actions: list[dict[str, str]] = []
        #: Channels ``CoreShowChannels`` lists (each a dict of the event's fields).
        self.channels: list[dict[str, str]] = []
        self.clients: list[asyncio.StreamWriter] = []
        self.logins = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> AmiServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self.clients:
                writer.close()
            self.clients.clear()
            await self._server.wait_closed()
            self._server = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BANNER)
        logged_in = False
        try:
            while True:
                message: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if not line:
                        return
                    text = line.decode().rstrip("\r\n")
                    if not text:
                        break
                    key, _, value = text.partition(":")
                    message[key.strip()] = value.strip()
                if not message:
                    continue
                self.actions.append(message)
                action, action_id = message.get("Action", ""), message.get("ActionID", "")
                if action == "Login":
                    if message.get("Username") == self.username and message.get("Secret") == self.secret:
                        logged_in = True
                        self.logins += 1
                        self.clients.append(writer)
                        writer.write(
                            _encode(
                                {
                                    "Response": "Success",
                                    "ActionID": action_id,
                                    "Message": "Authentication accepted",
                                }
                            )
                        )
                    else:
                        writer.write(
                            _encode(
                                {
                                    "Response": "Error",
                                    "ActionID": action_id,
                                    "Message": "Authentication failed",
                                }
                            )
                        )
                elif not logged_in:
                    writer.write(
                        _encode({"Response": "Error", "ActionID": action_id, "Message": "Permission denied"})
                    )
                elif action == "CoreShowChannels":
                    writer.write(
                        _encode({"Response": "Success", "ActionID": action_id, "EventList": "start"})
                    )
                    for channel in self.channels:
                        writer.write(_encode({"Event": "CoreShowChannel", "ActionID": action_id, **channel}))
                    writer.write(
                        _encode(
                            {
                                "Event": "CoreShowChannelsComplete",
                                "ActionID": action_id,
                                "EventList": "Complete",
                                "ListItems": len(self.channels),
                            }
                        )
                    )
                elif action == "Logoff":
                    writer.write(_encode({"Response": "Goodbye", "ActionID": action_id}))
                    await writer.drain()
                    return
                else:  # Originate and anything else: accepted
                    writer.write(
                        _encode(
                            {
                                "Response": "Success",
                                "ActionID": action_id,
                                "Message": "Originate successfully queued",
                            }
                        )
                    )
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            if writer in self.clients:
                self.clients.remove(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def emit(self, event: str, **fields: Any) -> None:
        """Send an event to every logged-in client."""
        for writer in list(self.clients):
            writer.write(_encode({"Event": event, **fields}))
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def call_in(self, call_id: str, caller: str, did: str = "4950000000") -> None:
        """A customer's call reaches the PBX (its first channel)."""
        await self.emit(
            "Newchannel",
            Channel=f"PJSIP/trunk-{call_id}",
            CallerIDNum=caller,
            Exten=did,
            Context="from-trunk",
            Uniqueid=call_id,
            Linkedid=call_id,
        )

    async def ring(self, call_id: str, extension: str) -> None:
        await self.emit(
            "DialBegin",
            Uniqueid=call_id,
            Linkedid=call_id,
            DestChannel=f"PJSIP/{extension}-x",
            DestCallerIDNum=extension,
            DestExten=extension,
        )

    async def answer(self, call_id: str, extension: str) -> None:
        await self.emit(
            "DialEnd", Uniqueid=call_id, Linkedid=call_id, DestCallerIDNum=extension, DialStatus="ANSWER"
        )

    async def record(self, call_id: str, filename: str) -> None:
        await self.emit(
            "VarSet", Uniqueid=call_id, Linkedid=call_id, Variable="MIXMONITOR_FILENAME", Value=filename
        )

    async def hangup(self, call_id: str) -> None:
        await self.emit("Hangup", Uniqueid=call_id, Linkedid=call_id, Cause="16")


async def eventually(check: Any, within: float = 10.0) -> Any:
    """Wait until ``await check()`` (or ``check()``) is truthy; its value. Fails after
    ``within`` seconds (a bound, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)

"""The adapter survives the homeserver going away: it backs off, reconnects and loses nothing either way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import pytest

from bot.actions import Post
from bot.events import Message
from tests.e2e.matrix.conftest import EventRecorder, MakeAdapter, MakeMember, MakeUser
from tests.e2e.matrix.synapse_harness import SynapseServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


class CuttableProxy:
    """A loopback TCP proxy to Synapse that can be taken down (connections refused) and brought back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Stop listening and cut every open connection (again: a no-op)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}
        pumps = [asyncio.create_task(self._pump(reader, up_writer)), asyncio.create_task(self._pump(up_reader, writer))]
        self._tasks.update(pumps)
        for pump in pumps:
            pump.add_done_callback(self._tasks.discard)
        await asyncio.gather(*pumps, return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()


async def test_outage_is_ridden_out_with_backoff_and_nothing_is_lost(
        synapse: SynapseServer, make_member: MakeMember, make_user: MakeUser, make_adapter: MakeAdapter,
        caplog: pytest.LogCaptureFixture) -> None:
    proxy = CuttableProxy(synapse.port)
    await proxy.up()
    try:
        await _ride_out_outage(proxy, make_member, make_user, make_adapter, caplog)
    finally:
        await proxy.down()


async def _ride_out_outage(proxy: CuttableProxy, make_member: MakeMember, make_user: MakeUser,
                           make_adapter: MakeAdapter, caplog: pytest.LogCaptureFixture) -> None:
    alice = await make_member("alice")
    lien = make_user("lien")
    rec = EventRecorder()
    room = await alice.create_room()
    adapter = await make_adapter(lien, on_event=rec, allowed_inviters=[alice.user_id], homeserver=proxy.url,
                                 sync_timeout_ms=2_000)
    await alice.invite(room, lien.user_id)
    await alice.wait_membership(room, lien.user_id, "join")
    before = await alice.say(room, "before the outage")
    await rec.wait_for(lambda e: getattr(e, "id", None) == before)

    with caplog.at_level(logging.WARNING, logger="adapters.matrix_adapter"):
        await proxy.down()
        during = [await alice.say(room, f"during the outage {i}") for i in range(3)]
        pending = asyncio.create_task(adapter.deliver(
            Post(ts=NOW, community="localhost", room=room, kind="test", text="sent during the outage", key="o:1")))
        await asyncio.sleep(3)
        assert not pending.done()
        await proxy.up()
        sent = await asyncio.wait_for(pending, 30)
        await rec.wait_for(lambda e: getattr(e, "id", None) == during[-1], within=30)

    seen = [e.id for e in rec.events if isinstance(e, Message) and not e.is_bot]
    assert seen == [before, *during]
    assert (await alice.event(room, sent))["content"]["body"] == "sent during the outage"
    assert any("sync failed" in r.getMessage() for r in caplog.records)

"""lien end to end on Discord: `lien run --config F` (Engine, Runtime, ApScheduler, SqlStore and DiscordAdapter as
bot/main.py composes them) in a subprocess, talking to the stand-in through the real discord.py client.

Nudge delays are fractions of a minute (level 1 after 3 s, level 2 after 6 s), quiet hours are off and rooms are not
paced. Assertions are on what reached the wire (the stand-in's recorded REST calls) and on lien's database rows.
A negative check ("no nudge") always waits for a control question's nudge first, so it cannot pass by being early.
Control questions are asked in #general: in a quiet room, lien takes a second question right after a first one
for a question back to the asker (bot/linking.py), which is not what these tests are about.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.model import NudgeState, QState
from tests.e2e.discord.conftest import ALICE, BOB, FAST_NUDGES, GENERAL, GUILD, HELP, LIEN, MOD, StartLien, frame
from tests.e2e.discord.lien_process import LienDb, LienProcess, migrate, postgres_database, toml_config
from tests.e2e.discord.stand_in import EPHEMERAL_FLAG, DiscordStandIn, Recorded, monotonic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

OWNER = "419645148364931086"
POSTS = r"/channels/\d+/messages"
NUDGE1 = "This question is still open. Can anyone help?"
NOBODY = "This question is still waiting for an answer."
#: Level 1 after 12 s and level 2 after 15 s, for scenarios that restart or add a process before anything is due.
SLOWER = {"level1_floor_minutes": 0.2, "level2_floor_minutes": 0.25}
CONTROL = "Where does the exporter write its log file by default?"
#: Guild-level permissions sent with interactions: @everyone's, and the Moderators role's (Manage Server).
MEMBER_PERMISSIONS, MODERATOR_PERMISSIONS = 311385246785, 1411165318243


def _replies_to(stand_in: DiscordStandIn, message_id: str) -> list[Recorded]:
    """lien's accepted message POSTs that reply to `message_id`, in order."""
    return [r for r in stand_in.requests_to("POST", POSTS)
            if r.status == 200 and str((r.body.get("message_reference") or {}).get("message_id")) == message_id]


async def _nudges(stand_in: DiscordStandIn, message_id: str, count: int, within: float = 15) -> list[Recorded]:
    """Wait until lien replied `count` times to `message_id`; returns those replies."""
    found: list[Recorded] = await stand_in.wait_for(
        lambda: (r := _replies_to(stand_in, message_id))[count - 1:] and r, within=within)
    return found


async def _say(stand_in: DiscordStandIn, author: str, text: str, *, channel: str = HELP,
               reply_to: str | None = None) -> dict[str, Any]:
    message = stand_in.message(channel, author, text, reply_to=reply_to)
    await stand_in.dispatch("MESSAGE_CREATE", message)
    return message


async def _ask(stand_in: DiscordStandIn, db: LienDb, author: str, text: str, **kw: Any) -> dict[str, Any]:
    """Post a question and wait until lien has stored it as an open question."""
    message = await _say(stand_in, author, text, **kw)
    q = await db.wait_question(message.get("guild_id", GUILD), message["id"])
    assert q.state == QState.OPEN
    return message


async def _slash(stand_in: DiscordStandIn, user: str, name: str, *options: tuple[str, str],
                 permissions: int = MEMBER_PERMISSIONS, group: str | None = None) -> dict[str, Any]:
    """Run `/lien [group] NAME option...` as `user` in #help; returns lien's answer (the interaction's data)."""
    command: dict[str, Any] = {"name": name, "type": 1,
                               "options": [{"name": k, "type": 3, "value": v} for k, v in options]}
    if group is not None:
        command = {"name": group, "type": 2, "options": [command]}
    interaction = stand_in.interaction(HELP, user, [command], permissions=permissions)
    await stand_in.dispatch("INTERACTION_CREATE", interaction)
    [callback] = await stand_in.wait_for_requests(
        "POST", rf"/interactions/{interaction['id']}/{interaction['token']}/callback", within=10)
    if callback.body["type"] == 4:
        data: dict[str, Any] = callback.body["data"]
        return data
    # Deferred ("lien is thinking..."): the answer is the followup.
    [followup] = await stand_in.wait_for_requests("POST", rf"/webhooks/{LIEN}/{interaction['token']}", within=10)
    followed: dict[str, Any] = followup.body
    return followed


def _no_mass_ping_anywhere(stand_in: DiscordStandIn) -> None:
    sent = [*stand_in.requests_to("POST", POSTS), *stand_in.requests_to("POST", r"/interactions/.*"),
            *stand_in.requests_to("POST", r"/webhooks/.*")]
    for request in sent:
        body = request.body.get("data", request.body) or {}
        assert "@everyone" not in body.get("content", "") and "@here" not in body.get("content", "")
        if "allowed_mentions" in body:
            assert body["allowed_mentions"]["parse"] == []


# -- (a) nudges ---------------------------------------------------------------------------------------------------


async def test_unanswered_question_gets_level_1_then_level_2_mentioning_only_the_volunteer(
        start_lien: StartLien, stand_in: DiscordStandIn, lien_db: LienDb) -> None:
    await start_lien()
    await _say(stand_in, BOB, "hello everyone, happy to help with the exporter")
    helper = await _slash(stand_in, BOB, "helper", ("state", "on"))
    assert helper["flags"] & EPHEMERAL_FLAG
    assert helper["content"].startswith("Thanks! You may be asked")

    asked = monotonic()
    question = await _ask(stand_in, lien_db, ALICE, "How do I make the exporter retry on a 502 from the API?")
    level1, = await _nudges(stand_in, question["id"], 1)
    level1_after = monotonic() - asked
    _, level2 = await _nudges(stand_in, question["id"], 2)
    level2_after = monotonic() - asked

    assert level1.body["content"] == NUDGE1
    assert level1.body["allowed_mentions"] == {"parse": [], "users": []}
    assert level2.body["allowed_mentions"] == {"parse": [], "users": [int(BOB)]}
    assert level2.body["content"].startswith(f"<@{BOB}>: you may be able to help")
    assert 2.5 < level1_after < level2_after and level2_after > 5.5
    _no_mass_ping_anywhere(stand_in)
    sent = [m for m in stand_in.messages[HELP] if m["author"]["id"] == LIEN]
    assert [[u["id"] for u in m["mentions"]] for m in sent] == [[], [BOB]]
    stored = await lien_db.question(GUILD, question["id"])
    assert stored is not None and stored.nudges == 2

    why = await _slash(stand_in, BOB, "why")
    assert why["flags"] & EPHEMERAL_FLAG
    assert why["content"] == f"For question {question['id']}, lien mentioned:\n- {BOB}: you offered to help here"
    assert why["allowed_mentions"] == {"parse": [], "users": []}
    assert len(_replies_to(stand_in, question["id"])) == 2  # level 3 is an hour away


# -- (b) what cancels nudges ----------------------------------------------------------------------------------------


async def _answer_by_reply(stand_in: DiscordStandIn, question: dict[str, Any]) -> str:
    await _say(stand_in, BOB, "Set retries = 3 in the [exporter] section, it backs off on 5xx.",
               reply_to=question["id"])
    return QState.ANSWERED


async def _answer_in_thread(stand_in: DiscordStandIn, question: dict[str, Any]) -> str:
    thread = stand_in.thread_from(question, BOB, name="exporter retries")
    await stand_in.dispatch("THREAD_CREATE", thread)
    await _say(stand_in, BOB, "Set retries = 3 in the [exporter] section, it backs off on 5xx.",
               channel=thread["id"])
    return QState.ANSWERED


async def _asker_reacts_done(stand_in: DiscordStandIn, question: dict[str, Any]) -> str:
    await stand_in.dispatch("MESSAGE_REACTION_ADD", stand_in.reaction(HELP, question["id"], ALICE, "✅"))
    return QState.RESOLVED


@pytest.mark.parametrize("settle", [_answer_by_reply, _answer_in_thread, _asker_reacts_done],
                         ids=["reply", "thread-message", "asker-check-reaction"])
async def test_an_answer_or_the_askers_check_cancels_the_nudges(
        settle: Any, start_lien: StartLien, stand_in: DiscordStandIn, lien_db: LienDb) -> None:
    await start_lien()
    question = await _ask(stand_in, lien_db, ALICE, "How do I make the exporter retry on a 502 from the API?")
    control = await _ask(stand_in, lien_db, OWNER, CONTROL, channel=GENERAL)
    state = await settle(stand_in, question)
    settled = await lien_db.wait_question(GUILD, question["id"], state)
    assert settled.state == state

    await _nudges(stand_in, control["id"], 2)  # the control's level 2: both levels' due times have passed
    assert _replies_to(stand_in, question["id"]) == []
    assert {n.state for n in await lien_db.nudges(GUILD, question["id"])} == {NudgeState.CANCELLED}


# -- (c) commands ---------------------------------------------------------------------------------------------------


async def test_slash_unanswered_lists_open_questions_as_jump_links_only_to_the_caller(
        start_lien: StartLien, stand_in: DiscordStandIn, lien_db: LienDb) -> None:
    await start_lien(nudges={"level1_floor_minutes": 10.0, "level2_floor_minutes": 20.0})
    question = await _ask(stand_in, lien_db, ALICE, "How do I make the exporter retry on a 502 from the API?")
    answer = await _slash(stand_in, BOB, "unanswered")
    assert answer["flags"] & EPHEMERAL_FLAG
    assert answer["content"].startswith("Oldest open questions:\n- ")
    assert f"https://discord.com/channels/{GUILD}/{HELP}/{question['id']}" in answer["content"]
    assert "<link:" not in answer["content"]
    assert stand_in.requests_to("POST", POSTS) == []  # nothing said in the channel


async def test_slash_optout_is_private_stored_and_keeps_a_volunteer_out_of_nudges(
        start_lien: StartLien, stand_in: DiscordStandIn, lien_db: LienDb) -> None:
    await start_lien()
    await _say(stand_in, BOB, "hello everyone, happy to help with the exporter")
    assert (await _slash(stand_in, BOB, "helper", ("state", "on")))["flags"] & EPHEMERAL_FLAG
    optout = await _slash(stand_in, BOB, "optout")
    assert optout["flags"] & EPHEMERAL_FLAG
    assert optout["content"].startswith("lien will never mention or message you.")
    prefs = await lien_db.member(GUILD, BOB)
    assert prefs is not None and prefs.helper and prefs.optout

    question = await _ask(stand_in, lien_db, ALICE, "How do I make the exporter retry on a 502 from the API?")
    _, level2 = await _nudges(stand_in, question["id"], 2)
    assert level2.body["content"].startswith(NOBODY)
    assert level2.body["allowed_mentions"] == {"parse": [], "users": []}


async def test_mass_dm_and_mass_invite_requests_are_refused_with_an_explanation(
        start_lien: StartLien, stand_in: DiscordStandIn) -> None:
    await start_lien()
    dm_all = await _slash(stand_in, ALICE, "dm-all")
    assert dm_all["flags"] & EPHEMERAL_FLAG
    assert dm_all["content"].startswith("lien does not send private messages to everyone.")
    invite_all = await _slash(stand_in, ALICE, "invite-all")
    assert invite_all["content"].startswith("lien does not invite people in bulk.")

    request = await _say(stand_in, BOB, "!lien mass-invite everyone from the old server")
    [refusal] = await stand_in.wait_for(lambda: _replies_to(stand_in, request["id"]), within=10)
    assert refusal.body["content"].startswith("lien does not invite people in bulk.")
    assert refusal.body["allowed_mentions"] == {"parse": [], "users": []}
    assert stand_in.requests_to("POST", r"/users/@me/channels") == []  # no DM was even opened
    assert len(stand_in.requests_to("POST", POSTS)) == 1
    _no_mass_ping_anywhere(stand_in)


async def test_admin_command_from_a_member_without_manage_server_is_refused(
        start_lien: StartLien, stand_in: DiscordStandIn) -> None:
    await start_lien()
    refused = await _slash(stand_in, ALICE, "pause")
    assert refused["flags"] & EPHEMERAL_FLAG
    assert refused["content"] == "Only the community's admins can do that."
    typed = await _say(stand_in, ALICE, "!lien pause")
    [reply] = await stand_in.wait_for(lambda: _replies_to(stand_in, typed["id"]), within=10)
    assert reply.body["content"] == "Only the community's admins can do that."

    allowed = await _slash(stand_in, MOD, "pause", permissions=MODERATOR_PERMISSIONS)
    assert allowed["content"].startswith("Nudges are paused in this community")
    shown = await _slash(stand_in, ALICE, "show", group="config")
    assert shown["content"] == "Only the community's admins can do that."


# -- (d) connection loss and restarts -------------------------------------------------------------------------------


async def test_dropped_gateway_resumes_and_nothing_is_lost_or_done_twice(
        start_lien: StartLien, stand_in: DiscordStandIn, lien_db: LienDb) -> None:
    await start_lien(nudges=SLOWER)  # the reconnection must not race the first nudge
    answered = await _ask(stand_in, lien_db, ALICE, "How do I make the exporter retry on a 502 from the API?")

    await stand_in.drop(code=4000)
    # Sent while lien is disconnected: the session buffers them and replays them on RESUME.
    await _say(stand_in, BOB, "Set retries = 3 in the [exporter] section.", reply_to=answered["id"])
    missed = await _say(stand_in, OWNER, CONTROL, channel=GENERAL)
    command = await _say(stand_in, ALICE, "!lien policy")
    await stand_in.wait_for(lambda: stand_in.resumes == 1, within=20)

    await lien_db.wait_question(GUILD, answered["id"], QState.ANSWERED)
    await lien_db.wait_question(GUILD, missed["id"])
    await _nudges(stand_in, missed["id"], 2, within=25)
    assert len(_replies_to(stand_in, command["id"])) == 1  # replayed once, answered once
    assert _replies_to(stand_in, answered["id"]) == []
    assert len(_replies_to(stand_in, missed["id"])) == 2
    assert (stand_in.identifies, stand_in.resumes) == (1, 1)


async def test_answer_posted_while_lien_was_down_cancels_the_nudge_on_restart(
        start_lien: StartLien, stand_in: DiscordStandIn, lien_db: LienDb) -> None:
    # Level 1 after 12 s: lien is back (about 3 s) and has read the history well before it is due.
    first = await start_lien(nudges=SLOWER)
    question = await _ask(stand_in, lien_db, ALICE, "How do I make the exporter retry on a 502 from the API?")
    control = await _ask(stand_in, lien_db, OWNER, CONTROL, channel=GENERAL)
    assert await first.stop() == 0

    stand_in.message(HELP, BOB, "Set retries = 3 in the [exporter] section.", reply_to=question["id"])
    await start_lien(nudges=SLOWER, name="lien-again")
    await lien_db.wait_question(GUILD, question["id"], QState.ANSWERED)
    await _nudges(stand_in, control["id"], 2, within=25)
    assert _replies_to(stand_in, question["id"]) == []
    assert stand_in.identifies == 2


async def test_overdue_nudge_is_cancelled_by_an_answer_posted_while_lien_was_down(
        start_lien: StartLien, stand_in: DiscordStandIn, lien_db: LienDb) -> None:
    first = await start_lien()
    question = await _ask(stand_in, lien_db, ALICE, "How do I make the exporter retry on a 502 from the API?")
    assert await first.stop() == 0

    stand_in.message(HELP, BOB, "Set retries = 3 in the [exporter] section.", reply_to=question["id"])
    await asyncio.sleep(4)  # level 1 is now overdue: lien fires it at start unless it reads the answer first
    await start_lien(name="lien-again")
    control = await _ask(stand_in, lien_db, OWNER, CONTROL, channel=GENERAL)
    await _nudges(stand_in, control["id"], 1)
    assert _replies_to(stand_in, question["id"]) == []
    assert (await lien_db.question(GUILD, question["id"])).state == QState.ANSWERED  # type: ignore[union-attr]


# -- (e) rate limits ------------------------------------------------------------------------------------------------


async def test_a_429_delays_nudges_without_losing_or_repeating_any(
        start_lien: StartLien, stand_in: DiscordStandIn, lien_db: LienDb) -> None:
    await start_lien()
    stand_in.rate_limit_next("POST", POSTS, retry_after=1.5, times=2)
    first = await _ask(stand_in, lien_db, ALICE, "How do I make the exporter retry on a 502 from the API?")
    second = await _ask(stand_in, lien_db, OWNER, CONTROL, channel=GENERAL)

    await _nudges(stand_in, first["id"], 2, within=25)
    await _nudges(stand_in, second["id"], 2, within=25)
    posts = stand_in.requests_to("POST", POSTS)
    statuses = [p.status for p in posts]
    assert statuses.count(429) == 2 and statuses.count(200) == 4
    assert len(_replies_to(stand_in, first["id"])) == 2 and len(_replies_to(stand_in, second["id"])) == 2
    accepted = [p for p in posts if p.status == 200]
    assert len({p.body["nonce"] for p in accepted}) == 4
    lien_messages = [m for c in (HELP, GENERAL) for m in stand_in.messages[c] if m["author"]["id"] == LIEN]
    assert len(lien_messages) == 4


# -- (f) sharding ---------------------------------------------------------------------------------------------------

OTHER_GUILD = "1196378239799525377"  # shard 1 of 2; GUILD is on shard 0
OTHER_HELP = str(int(HELP) + 7)


@pytest.fixture
async def two_shard_stand_in() -> AsyncIterator[DiscordStandIn]:
    """A stand-in with two shards: the recorded guild on shard 0, a copy of it on shard 1."""
    other = copy.deepcopy(frame("guild_create")["d"])
    other["id"] = OTHER_GUILD
    for channel in [*other["channels"], *other["threads"]]:
        channel["id"] = str(int(channel["id"]) + 7)
        channel["guild_id"] = OTHER_GUILD
        if channel.get("parent_id"):
            channel["parent_id"] = str(int(channel["parent_id"]) + 7)
    for role in other["roles"]:
        role["id"] = OTHER_GUILD if role["id"] == GUILD else role["id"]
    async with DiscordStandIn(shard_count=2) as server:
        server.add_guild(copy.deepcopy(frame("guild_create")["d"]))
        server.add_guild(other)
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def shared_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """One database for both shard processes: a SQLite file, or a fresh PostgreSQL database (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'lien.db'}"
        return
    async with postgres_database() as url:
        yield url


async def test_two_shard_processes_on_one_database_never_nudge_twice(
        two_shard_stand_in: DiscordStandIn, tmp_path: Path, shared_db_url: str) -> None:
    await _two_shards_never_nudge_twice(two_shard_stand_in, tmp_path, shared_db_url)


async def _two_shards_never_nudge_twice(stand_in: DiscordStandIn, tmp_path: Path, db_url: str) -> None:
    db = LienDb(db_url)
    processes: list[LienProcess] = []

    def shard(n: int) -> LienProcess:
        config = tmp_path / f"shard{n}.toml"
        config.write_text(toml_config({
            # Level 1 after 12 s: the second process is up (about 4 s) and the answer in before anything is due.
            "storage": {"url": db_url}, "nudges": {**FAST_NUDGES, **SLOWER},
            "nudges.quiet_hours": {"enabled": False},
            "discord": {"command_sync": "off", "shard_count": 2, "shard_ids": [n]},
        }), encoding="utf-8")
        process = LienProcess(stand_in.url, config, tmp_path / f"shard{n}.log", token=stand_in.token)
        processes.append(process)
        return process

    first = shard(0)
    await migrate(first.config)  # once, before the processes start, as docs/discord.md says
    try:
        zero = await first.start()
        answered = await _ask(stand_in, db, ALICE, "How do I make the exporter retry on a 502 from the API?")
        unanswered = await _ask(stand_in, db, OWNER, CONTROL, channel=GENERAL)
        await shard(1).start()  # starts with those two questions' nudges pending in the shared database
        assert [p["shard"] for p in stand_in.identify_payloads] == [[0, 2], [1, 2]]
        await _say(stand_in, BOB, "Set retries = 3 in the [exporter] section.", reply_to=answered["id"])
        await db.wait_question(GUILD, answered["id"], QState.ANSWERED)
        elsewhere = await _ask(stand_in, db, ALICE, "How do I make the exporter retry on a 502 from the API?",
                               channel=OTHER_HELP)

        await _nudges(stand_in, unanswered["id"], 2, within=25)
        await _nudges(stand_in, elsewhere["id"], 2, within=25)
        await asyncio.sleep(1)  # room for a late duplicate
        assert len(_replies_to(stand_in, unanswered["id"])) == 2
        assert len(_replies_to(stand_in, elsewhere["id"])) == 2
        assert _replies_to(stand_in, answered["id"]) == []
        stored = await db.question(GUILD, answered["id"])
        assert stored is not None and stored.state == QState.ANSWERED
        assert zero.running
    finally:
        for process in processes:
            if process.running:
                await process.stop()
    problems = [f"{p.log.name}: {line}" for p in processes for line in p.problems()]
    assert problems == [], problems

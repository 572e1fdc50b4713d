"""The engine end to end on in-memory fakes and virtual time: ladder, cancellation, refusals, consent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.config import Settings
from bot.engine import log_skipped
from bot.model import Nudge, QState
from tests.bot_driver import TestBot
from tests.fakes import FakeStore

HISTORY = """
/as bob
!lien helper on
/as carol
!lien helper on
/wait 1h
/as carol
How do I make the CI run only on the main branch?
/wait 3m
/as alice
/reply m3 Add a branches filter under on push in the workflow file.
/wait 2m
/as carol
/reply m4 thanks, that worked!
/wait 2h
/as alice
Does anyone know why my docker build ignores the dockerignore file?
/wait 4m
/as bob
/reply m6 It must sit at the root of the build context.
/wait 3h
"""


@pytest.fixture
async def bot() -> TestBot:
    return await TestBot(FakeStore()).start()


async def ask(bot: TestBot, who: str, text: str) -> str:
    await bot.lines(f"/as {who}\n{text}")
    return bot.id(f"m{bot.adapter._count}")


async def test_unanswered_question_climbs_the_ladder_then_goes_stale(bot: TestBot) -> None:
    await bot.lines(HISTORY)
    await bot.wait("1d")
    q = await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("29m")
    assert bot.of("nudge") == []
    await bot.wait("2m")
    [l1] = bot.of("nudge", 1)
    assert l1.reply_to == q and l1.mentions == () and l1.name == "reply"
    await bot.wait("90m")
    [l2] = bot.of("nudge", 2)
    # carol was helped by alice (reciprocity first), bob helped alice.
    assert l2.mentions == ("carol", "bob")
    assert "<@carol>" in l2.text and "alice helped you before" in l2.text
    await bot.wait("22h")
    [l3] = bot.of("nudge", 3)
    assert l3.level == 3 and l3.name == "reply"  # alice did not allow DMs
    q_state = bot.engine.tracker.get("console", q)
    assert q_state is not None and q_state.state == QState.STALE
    await bot.wait("7d")
    assert len(bot.of("nudge")) == 3


async def test_nudge_cancelled_when_answered(bot: TestBot) -> None:
    await bot.lines(HISTORY)
    q = await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("20m")
    await bot.lines(f"/as carol\n/reply m{bot.adapter._count} Publish the new key first, then retire the old one.")
    await bot.wait("3d")
    assert [a for a in bot.of("nudge") if a.question == q] == []
    assert bot.engine.pending_for("console", q) == []


async def test_level3_is_private_when_the_asker_allowed_dms(bot: TestBot) -> None:
    await bot.lines("/as erin\n!lien dms on")
    await ask(bot, "erin", "Why does my build fail with a linker error on arm64?")
    await bot.wait("25h")
    [l3] = bot.of("nudge", 3)
    assert l3.name == "dm" and l3.to == "erin" and l3.room is None


async def test_optout_member_is_never_mentioned(bot: TestBot) -> None:
    await bot.lines(HISTORY + "\n/as carol\n!lien optout")
    await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("3h")
    [l2] = bot.of("nudge", 2)
    assert "carol" not in l2.mentions and l2.mentions == ("bob",)


async def test_member_is_pinged_at_most_once_a_day(bot: TestBot) -> None:
    await bot.lines(HISTORY)
    await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("5m")
    await ask(bot, "dave", "Where do I find the logs of the scheduler service?")
    await bot.wait("3h")
    level2 = bot.of("nudge", 2)
    assert len(level2) == 2
    mentioned = [m for a in level2 for m in a.mentions]
    assert sorted(mentioned) == sorted(set(mentioned))


async def test_same_asker_gets_level1_once_per_week_per_room(bot: TestBot) -> None:
    await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("1h")
    await ask(bot, "alice", "Where is the config file for the gateway stored?")
    await bot.wait("1h")
    assert len(bot.of("nudge", 1)) == 1


@pytest.mark.parametrize(
    "command, reason",
    [
        ("!lien dm-all Join my server", "mass_dm"),
        ("!lien invite-all", "mass_invite"),
        ("!lien mention-all hello", "mass_mention"),
        ("!lien announce big news", "mass_mention"),
        ("!lien why @a @b @c @d", "mass_mention"),
    ],
    ids=["dm-all", "invite-all", "mention-all", "announce", "too-many-recipients"],
)
async def test_mass_requests_are_refused_with_an_explanation(bot: TestBot, command: str, reason: str) -> None:
    await bot.lines(f"/as dave\n/admin on\n{command}")
    [refusal] = bot.sent
    assert refusal.name == "refuse" and refusal.reason == reason and len(refusal.text) > 40


async def test_admin_command_refused_for_member_and_accepted_for_admin(bot: TestBot) -> None:
    await bot.lines("/as dave\n!lien pause")
    assert bot.sent[-1].reason == "permission"
    await bot.lines("/admin on\n!lien pause")
    assert bot.sent[-1].name == "reply" and "console" in bot.engine.paused
    await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    await bot.wait("3h")
    assert bot.of("nudge") == []
    await bot.lines("/as dave\n!lien resume")
    await bot.wait("1m")
    assert [a.level for a in bot.of("nudge")] == [1]


async def test_join_wave_freezes_nudges_and_reports(bot: TestBot) -> None:
    await ask(bot, "alice", "How can I rotate the signing keys without downtime?")
    for n in range(50):
        await bot.lines(f"/join newcomer{n}")
    [report] = [a for a in bot.sent if a.name == "report" and a.reason == "join_wave"]
    assert report.kind == "guard"
    await bot.wait("3h")
    assert bot.of("nudge") == []


async def test_unknown_command_does_not_echo_a_live_mention(bot: TestBot) -> None:
    await bot.lines("/as dave\n!lien @everyone")
    [reply] = [a for a in bot.sent if a.kind == "command"]
    assert "@everyone" not in reply.text and reply.mentions == ()


async def test_forget_me_removes_every_row_naming_the_member() -> None:
    store = FakeStore()
    bot = await TestBot(store).start()
    await bot.lines(HISTORY)
    await bot.lines("/as carol\n!lien forget-me")
    assert "deleted" in bot.sent[-1].text
    d = store.data
    assert not [m for m in d.messages.values() if m.author == "carol"]
    assert not [q for q in d.questions.values() if q.author == "carol"]
    assert not [e for e in d.edges if "carol" in (e.helper, e.asker)]
    assert ("console", "carol") not in d.members


async def test_policy_lists_what_lien_never_does(bot: TestBot) -> None:
    await bot.lines("/as dave\n!lien policy")
    assert "never" in bot.sent[-1].text and "@everyone" not in bot.sent[-1].text


async def test_busy_room_waits_longer_than_a_quiet_floor() -> None:
    settings = Settings.model_validate({"nudges": {"min_samples": 3}})
    bot = await TestBot(FakeStore(), settings).start()
    for n in range(4):
        q = await ask(bot, "alice", f"How do I configure the proxy number {n} for the build?")
        await bot.wait("50m")
        await bot.lines(f"/as bob\n/reply {bot.adapter._labels[q]} Set HTTP_PROXY in the environment.")
        await bot.wait("1h")
    ladder = bot.engine._ladder("console", "general")
    assert ladder.level1 >= timedelta(minutes=50)


async def test_health_command_answers_with_figures_and_no_mentions(bot: TestBot) -> None:
    await bot.lines(HISTORY + "\n/as dave\n!lien health")
    reply = bot.sent[-1]
    assert reply.kind == "command" and reply.mentions == () and "<@" not in reply.text
    assert any(ch.isdigit() for ch in reply.text)


async def test_weekly_digest_posts_in_the_digest_room_and_never_pings() -> None:
    settings = Settings.model_validate({"digest_room": "digest"})
    bot = await TestBot(FakeStore(), settings).start()
    await bot.lines(HISTORY)
    await ask(bot, "erin", "Where can I find the logs of the scheduler service?")
    await bot.wait("8d")
    digests = [a for a in bot.sent if a.kind == "digest"]
    assert digests, "a weekly digest was posted"
    assert all(a.room == "digest" and a.mentions == () and "<@" not in a.text for a in digests)
    assert "<link:general/" in digests[0].text


async def test_credit_command_records_consent_to_be_thanked_by_name(bot: TestBot) -> None:
    await bot.lines("/as bob\n!lien credit on")
    prefs = await bot.engine.members.get(None, "console", "bob")  # type: ignore[arg-type]
    assert prefs is not None and prefs.named_thanks


def test_skipped_nudges_are_logged_for_an_operator(caplog: pytest.LogCaptureFixture) -> None:
    due = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    with caplog.at_level("WARNING", logger="bot.engine"):
        log_skipped([Nudge("guild", "q1", 2, due)])
    assert [r.getMessage() for r in caplog.records] == [
        f"nudge {Nudge('guild', 'q1', 2, due).key} skipped: overdue since 2026-03-01T10:00:00+00:00"
    ]

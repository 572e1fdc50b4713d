"""The question tracker: every state transition and linking rule, on plain events and virtual time."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.config import Settings
from bot.events import Delete, Edit, Message, Reaction
from bot.model import Answer, MessageMeta, QState, Question
from bot.tracker import Change, Linked, Opened, QuestionTracker, Resolved, Withdrawn

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
C = "guild"


class Chat:
    """Posts messages in one room with increasing ids and times, and records the tracker's changes."""

    def __init__(self, tracker: QuestionTracker, room: str = "help") -> None:
        self.t = tracker
        self.room = room
        self.n = 0
        self.now = T0

    def say(self, author: str, text: str, *, after: timedelta = timedelta(seconds=30), **kw: Any) -> list[Change]:
        self.n += 1
        self.now += after
        kw.setdefault("id", f"m{self.n}")
        self.last = Message(C, self.room, ts=self.now, author=author, text=text, **kw)
        return self.t.on_message(self.last)

    def react(self, author: str, message: str, emoji: str) -> list[Change]:
        self.now += timedelta(seconds=10)
        return self.t.on_reaction(Reaction(C, self.room, message, author, emoji, self.now))


def tracker(**questions: Any) -> QuestionTracker:
    settings = Settings.model_validate(
        {
            "lien": {"bot_ids": ["otherbot"], "self_ids": ["lien"]},
            "questions": questions,
            "communities": {C: {"rooms": {"forum": {"questions": {"mode": "every_thread"}}}}},
        }
    )
    return QuestionTracker(settings, window=20, linger=timedelta(days=1))


@pytest.fixture
def chat() -> Chat:
    return Chat(tracker())


def kinds(changes: list[Change]) -> list[str]:
    return [type(c).__name__ for c in changes]


def answers(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.question.id, c.answer.message, c.answer.how) for c in changes if isinstance(c, Linked)]


# -- opening ---------------------------------------------------------------------------------------------------


def test_question_opens_and_plain_statement_does_not(chat: Chat) -> None:
    assert chat.say("bob", "the weather is nice today") == []
    [opened] = chat.say("alice", "How do I mount a USB drive on 22.04?")
    assert isinstance(opened, Opened)
    q = opened.question
    assert (q.id, q.author, q.room, q.state, q.asked_ts) == ("m2", "alice", "help", QState.OPEN, chat.now)
    assert [q.id for q in chat.t.open_questions()] == ["m2"]


def test_question_addressed_to_someone_is_not_opened(chat: Chat) -> None:
    chat.say("bob", "morning all")
    assert chat.say("alice", "bob: how do I mount a usb drive?") == []


def test_question_asked_mid_conversation_is_a_turn_not_a_new_question(chat: Chat) -> None:
    chat.say("bob", "I use the default settings for everything")
    chat.say("carol", "bob: which kernel do you run?")
    assert chat.say("bob", "is that the one with the new scheduler?") == []


def test_askers_quick_second_question_is_a_follow_up(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive on 22.04?")
    assert chat.say("alice", "or should I use the disks app?") == []


def test_off_mode_opens_nothing() -> None:
    chat = Chat(tracker(mode="off"))
    assert chat.say("alice", "How do I mount a USB drive?") == []
    assert chat.say("bob", "alice: use the disks app", mentions=("alice",)) == []


def test_new_settings_take_effect_on_the_next_message(chat: Chat) -> None:
    assert kinds(chat.say("alice", "How do I mount a USB drive?")) == ["Opened"]
    chat.t.settings = Settings.model_validate({"questions": {"mode": "off"}})
    assert chat.say("carol", "Why does apt hang at 99%?", after=timedelta(hours=3)) == []


def test_every_thread_mode_opens_each_thread_root_even_without_question_mark() -> None:
    chat = Chat(tracker(), room="forum")
    [opened] = chat.say("alice", "Printer stopped working after upgrade", id="t1", thread="t1")
    assert opened.question.thread == "t1"
    assert answers(chat.say("bob", "Which model is it", thread="t1")) == [("t1", "m2", "thread")]
    assert chat.say("carol", "just chatting here, no thread") == []


def test_every_thread_mode_first_message_of_unknown_thread_opens_it() -> None:
    chat = Chat(tracker(), room="forum")
    [opened] = chat.say("alice", "my printer stopped working", thread="old-root")
    assert (opened.question.id, opened.question.thread) == ("m1", "old-root")
    assert answers(chat.say("bob", "which model", thread="old-root")) == [("m1", "m2", "thread")]


def test_every_thread_mode_seen_root_becomes_the_question_when_someone_replies_in_its_thread() -> None:
    chat = Chat(tracker(), room="forum")
    assert chat.say("alice", "my printer stopped working") == []
    changes = chat.say("bob", "which model", thread="m1")
    assert kinds(changes) == ["Opened", "Linked"]
    assert changes[0].question.id == "m1" and answers(changes) == [("m1", "m2", "thread")]


# -- linking ---------------------------------------------------------------------------------------------------


def test_reply_to_question_answers_it(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    [linked] = chat.say("bob", "use the disks app", reply_to="m1")
    assert isinstance(linked, Linked)
    q = linked.question
    assert (q.state, q.answered_by, q.first_answer_ts, q.answers) == (QState.ANSWERED, "m2", chat.now, ["m2"])
    assert (linked.answer.author, linked.answer.how) == ("bob", "reply")


def test_reply_to_askers_follow_up_answers_the_question(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("alice", "it is formatted as exfat")
    assert answers(chat.say("bob", "install exfat-fuse", reply_to="m2")) == [("m1", "m3", "reply")]


def test_reply_to_another_helpers_answer_does_not_answer(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app", reply_to="m1")
    assert chat.say("carol", "disks is not installed by default", reply_to="m2") == []


def test_several_answers_are_linked_in_time_order(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app", reply_to="m1")
    [linked] = chat.say("carol", "or udisksctl mount -b /dev/sdb1", reply_to="m1")
    assert linked.question.answers == ["m2", "m3"] and linked.question.answered_by == "m2"


def test_askers_own_reply_is_not_an_answer(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert chat.say("alice", "it is exfat by the way", reply_to="m1") == []
    assert chat.t.get(C, "m1").state is QState.OPEN  # type: ignore[union-attr]


def test_message_in_questions_thread_answers_it(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert chat.say("alice", "more details: exfat", thread="m1") == []
    assert answers(chat.say("bob", "install exfat-fuse", thread="m1")) == [("m1", "m3", "thread")]


def test_mention_of_asker_answers_their_question(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("dave", "anyone tried the new release")
    assert answers(chat.say("bob", "alice: use the disks app", mentions=("alice",))) == [("m1", "m3", "mention")]


def test_irc_nick_prefix_addresses_asker_without_mentions_field(chat: Chat) -> None:
    chat.say("Alice", "How do I mount a USB drive?")
    assert answers(chat.say("bob", "alice, use the disks app")) == [("m1", "m2", "mention")]


def test_first_reply_by_position_answers_in_a_room_without_replies(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert answers(chat.say("bob", "use the disks app")) == [("m1", "m2", "position")]


def test_position_does_not_link_chatter_or_a_new_help_request(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert chat.say("bob", "lol") == []
    [opened] = chat.say("carol", "does anyone know how to reset a forgotten password?")
    assert isinstance(opened, Opened)
    assert chat.t.get(C, "m1").state is QState.OPEN  # type: ignore[union-attr]


def test_position_does_not_link_once_the_conversation_moved_on(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("dave", "carol: the build is green again", mentions=("carol",))
    chat.say("erin", "frank: see the changelog", mentions=("frank",))
    assert chat.say("bob", "use the disks app") == []


def test_position_does_not_link_in_a_room_that_uses_replies_when_someone_else_spoke(chat: Chat) -> None:
    chat.say("dave", "earlier message")
    chat.say("erin", "a reply", reply_to="m1")
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("frank", "unrelated remark about lunch")
    assert chat.say("bob", "use the disks app") == []


def test_late_first_reply_links_only_when_nobody_else_spoke(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert answers(chat.say("bob", "use the disks app", after=timedelta(minutes=90))) == [("m1", "m2", "position")]
    chat.say("carol", "Why does apt hang at 99%?", after=timedelta(hours=1))
    chat.say("dave", "erin: lunch?", mentions=("erin",), after=timedelta(minutes=40))
    assert chat.say("bob", "kill the dpkg lock holder", after=timedelta(minutes=5)) == []


def test_position_does_not_link_an_old_question(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert chat.say("bob", "use the disks app", after=timedelta(hours=3)) == []


def test_question_long_after_another_is_a_new_question(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert kinds(chat.say("carol", "Why does apt hang at 99%?", after=timedelta(hours=1))) == ["Opened"]


def test_helper_carrying_on_the_conversation_is_linked(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "alice: use the disks app", mentions=("alice",))
    assert answers(chat.say("bob", "or udisksctl from a terminal")) == [("m1", "m3", "conversation")]


def test_question_back_in_a_quiet_room_answers_by_position(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert answers(chat.say("bob", "which filesystem is on it?")) == [("m1", "m2", "position")]
    assert chat.say("alice", "exfat") == []  # a follow-up


def test_asker_answering_a_question_back_links_both_ways_in_a_busy_room(chat: Chat) -> None:
    chat.say("dave", "erin: the build is green", mentions=("erin",))
    chat.say("erin", "dave: great, merging", mentions=("dave",))
    chat.say("alice", "How do I mount a USB drive?")
    assert kinds(chat.say("bob", "which filesystem is on it?")) == ["Opened"]
    assert answers(chat.say("alice", "exfat")) == [("m3", "m4", "turn"), ("m4", "m5", "turn")]


def test_asker_addressing_someone_links_that_persons_last_message(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("dave", "frank: see the changelog", mentions=("frank",))
    chat.say("erin", "carol: the build is green", mentions=("carol",))
    chat.say("bob", "the disks app does that")
    assert answers(chat.say("alice", "bob: where do I find it?")) == [("m1", "m4", "turn")]


def test_talking_back_to_ones_helper_is_not_answering_the_helpers_question(chat: Chat) -> None:
    chat.say("bob", "Where are the kernel logs kept?")
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "alice: use the disks app", mentions=("alice",))
    changes = chat.say("alice", "bob: ok :)", mentions=("bob",))
    assert all(c.question.id != "m1" for c in changes)


# Regression: on a console run, dave's new question five minutes after alice's was linked as her answer.
@pytest.mark.parametrize("platform", ["discord", "matrix", "console"])
def test_new_question_right_after_a_question_is_not_its_answer_on_platforms_with_replies(platform: str) -> None:
    chat = Chat(tracker())
    chat.say("alice", "How can I rotate the keys?", platform=platform)
    changes = chat.say("dave", "Where are the scheduler logs kept?", after=timedelta(minutes=5), platform=platform)
    assert kinds(changes) == ["Opened"]
    assert chat.t.get(C, "m1").state is QState.OPEN  # type: ignore[union-attr]


def test_new_question_right_after_a_question_is_not_its_answer_in_a_room_that_used_replies(chat: Chat) -> None:
    chat.say("erin", "the nightly build is green")
    chat.say("frank", "nice", reply_to="m1")
    chat.say("alice", "How can I rotate the keys?", after=timedelta(hours=1))
    assert kinds(chat.say("dave", "Where are the scheduler logs kept?", after=timedelta(minutes=5))) == ["Opened"]
    assert chat.t.get(C, "m3").state is QState.OPEN  # type: ignore[union-attr]


def test_plain_answer_right_after_a_question_still_links_on_platforms_with_replies() -> None:
    chat = Chat(tracker())
    chat.say("alice", "How can I rotate the keys?", platform="discord")
    assert answers(chat.say("bob", "run the rotate task from the admin page", platform="discord")) == [
        ("m1", "m2", "position")
    ]


def test_late_message_is_not_a_first_reply_on_platforms_with_replies() -> None:
    chat = Chat(tracker())
    chat.say("alice", "How can I rotate the keys?", platform="discord")
    assert answers(chat.say("bob", "run the rotate task", after=timedelta(minutes=90), platform="discord")) == []


def test_new_question_in_between_is_not_a_turn_of_the_askers_conversation_on_platforms_with_replies() -> None:
    chat = Chat(tracker())
    chat.say("alice", "How can I rotate the keys?", platform="matrix")
    chat.say("dave", "Where are the scheduler logs kept?", platform="matrix")
    assert answers(chat.say("alice", "they expire tomorrow", platform="matrix")) == []
    assert [q.id for q in chat.t.open_questions()] == ["m1", "m2"]


@pytest.mark.parametrize("text", ["same problem here", "me too :(", "I have the same issue since the update"])
def test_me_too_is_not_an_answer(chat: Chat, text: str) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert answers(chat.say("bob", text)) == []


def test_question_back_asking_the_asker_to_show_something_answers_by_position(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert answers(chat.say("bob", "can you show me the output of lsblk?")) == [("m1", "m2", "position")]


def test_first_reply_does_not_link_someone_talking_to_somebody_else(chat: Chat) -> None:
    chat.say("carol", "bob: did the upgrade finish?", mentions=("bob",))
    chat.say("alice", "How do I mount a USB drive?")
    assert answers(chat.say("bob", "yes, it took an hour")) == []


def test_asking_again_while_unanswered_is_a_follow_up_and_its_answer_answers_the_first(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("dave", "erin: lunch?", mentions=("erin",), after=timedelta(minutes=5))
    chat.say("erin", "dave: sure", mentions=("dave",))
    assert chat.say("alice", "anyone knows how to mount an exfat drive?", after=timedelta(minutes=15)) == []
    assert answers(chat.say("bob", "alice: install exfat-fuse", mentions=("alice",))) == [("m1", "m5", "mention")]


def test_asking_again_long_after_is_a_new_question(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    assert kinds(chat.say("alice", "Why does apt hang at 99%?", after=timedelta(hours=1))) == ["Opened"]


def test_stale_question_still_takes_an_answer(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    q = chat.t.mark_stale(C, "m1")
    assert q is not None and q.state is QState.STALE
    assert chat.t.mark_stale(C, "m1") is None
    [linked] = chat.say("bob", "use the disks app", reply_to="m1", after=timedelta(days=2))
    assert linked.question.state is QState.ANSWERED


# -- resolution ------------------------------------------------------------------------------------------------


def test_thanks_in_reply_to_answer_resolves_and_credits_its_author(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app", reply_to="m1")
    [resolved] = chat.say("alice", "thanks, that worked!", reply_to="m2")
    assert isinstance(resolved, Resolved)
    assert (resolved.by, resolved.credited) == ("alice", ("bob",))
    q = resolved.question
    assert (q.state, q.credited, q.resolved_ts) == (QState.RESOLVED, ["bob"], chat.now)


def test_thanks_addressed_to_helper_resolves(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "alice: use the disks app", mentions=("alice",))
    [resolved] = chat.say("alice", "bob: merci, ça marche !", mentions=("bob",))
    assert isinstance(resolved, Resolved) and resolved.credited == ("bob",)


def test_unaddressed_thanks_resolves_crediting_the_answerers(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app")
    changes = chat.say("alice", "solved, thanks")
    assert isinstance(changes[-1], Resolved) and changes[-1].credited == ("bob",)


def test_thanks_in_advance_does_not_resolve(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app", reply_to="m1")
    assert chat.say("alice", "will try, thanks in advance", reply_to="m2") == []
    assert chat.t.get(C, "m1").state is QState.ANSWERED  # type: ignore[union-attr]


def test_askers_check_reaction_on_answer_resolves_and_credits(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app", reply_to="m1")
    [resolved] = chat.react("alice", "m2", "✅")
    assert isinstance(resolved, Resolved) and resolved.credited == ("bob",)
    assert chat.react("alice", "m2", "👍") == []  # nothing new to say


def test_someone_elses_reaction_does_not_resolve(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app", reply_to="m1")
    assert chat.react("carol", "m2", "✅") == []
    assert chat.react("alice", "m2", "😂") == []


def test_askers_check_on_an_unlinked_later_message_links_and_resolves(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("dave", "frank: see the changelog", mentions=("frank",))
    chat.say("erin", "carol: the build is green", mentions=("carol",))
    chat.say("bob", "udisksctl mount -b /dev/sdb1")
    changes = chat.react("alice", "m4", "✔️")
    assert kinds(changes) == ["Linked", "Resolved"] and answers(changes) == [("m1", "m4", "reaction")]


def test_thumbs_up_on_an_unlinked_message_is_only_approval(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("dave", "frank: see the changelog", mentions=("frank",))
    assert chat.react("alice", "m2", "👍") == []


def test_check_reaction_on_own_question_resolves_without_credit(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    [resolved] = chat.react("alice", "m1", "white_check_mark")
    assert resolved.credited == () and resolved.question.state is QState.RESOLVED  # type: ignore[union-attr]


def test_resolve_command_by_asker_and_by_moderator(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("carol", "Why does apt hang at 99%?", after=timedelta(hours=1))
    assert chat.t.resolve(C, "help", "bob", "m1", chat.now) == []
    [done] = chat.t.resolve(C, "help", "alice", None, chat.now)
    assert isinstance(done, Resolved) and done.question.id == "m1"
    [done] = chat.t.resolve(C, "help", "mod", "m2", chat.now, moderator=True)
    assert isinstance(done, Resolved) and done.by == "mod"


def test_resolved_question_takes_no_more_answers(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.t.resolve(C, "help", "alice", "m1", chat.now)
    assert chat.say("bob", "use the disks app", reply_to="m1") == []


# -- withdrawal ------------------------------------------------------------------------------------------------


def test_deleting_question_withdraws_it(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    [gone] = chat.t.on_delete(Delete(C, "help", "m1", chat.now))
    assert isinstance(gone, Withdrawn) and gone.question.state is QState.WITHDRAWN
    assert chat.t.on_delete(Delete(C, "help", "m1", chat.now)) == []
    assert chat.say("bob", "use the disks app", reply_to="m1") == []


def test_deleting_an_answered_question_withdraws_it(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app", reply_to="m1")
    assert kinds(chat.t.on_delete(Delete(C, "help", "m1", chat.now))) == ["Withdrawn"]


def test_not_a_question_command_withdraws_authors_latest_question(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("alice", "Why does apt hang at 99%?", after=timedelta(hours=1))
    assert chat.t.withdraw(C, "help", "bob", None, chat.now) == []
    [gone] = chat.t.withdraw(C, "help", "alice", None, chat.now)
    assert gone.question.id == "m2"
    assert chat.t.withdraw(C, "help", "bob", "m1", chat.now) == []  # not bob's
    assert kinds(chat.t.withdraw(C, "help", "alice", "m1", chat.now)) == ["Withdrawn"]


# -- what is ignored -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("author", "text", "is_bot"),
    [
        ("ubottu", "How do I mount a USB drive?", True),
        ("otherbot", "How do I mount a USB drive?", False),
        ("lien", "How do I mount a USB drive?", False),
        ("alice", "!lien unanswered how do I list them?", False),
    ],
    ids=["is-bot", "configured-bot", "lien-itself", "command"],
)
def test_bots_lien_and_commands_are_ignored(chat: Chat, author: str, text: str, is_bot: bool) -> None:
    assert chat.say(author, text, is_bot=is_bot) == []
    chat.say("alice", "How do I mount a USB drive?")
    assert chat.say(author, f"alice: {text}", is_bot=is_bot, mentions=("alice",)) == []


def test_duplicate_message_changes_nothing(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    [linked] = chat.say("bob", "use the disks app", reply_to="m1")
    again = chat.last
    assert chat.t.on_message(again) == []
    assert chat.t.on_message(Message(C, "help", "m1", T0, "alice", "How do I mount a USB drive?")) == []
    assert linked.question.answers == ["m2"]


# -- edits -----------------------------------------------------------------------------------------------------


def test_recent_message_edited_into_a_question_opens_one(chat: Chat) -> None:
    chat.say("alice", "my usb drive will not mount")
    [opened] = chat.t.on_edit(Edit(C, "help", "m1", "why will my usb drive not mount?", chat.now))
    assert isinstance(opened, Opened) and opened.question.asked_ts == T0 + timedelta(seconds=30)
    assert chat.t.on_edit(Edit(C, "help", "m1", "why will my usb drive not mount?", chat.now)) == []


def test_old_or_addressed_message_edited_into_a_question_opens_nothing(chat: Chat) -> None:
    chat.say("alice", "my usb drive will not mount")
    chat.say("carol", "bob: hello", mentions=("bob",))
    late = chat.now + timedelta(hours=1)
    assert chat.t.on_edit(Edit(C, "help", "m1", "why will my usb drive not mount?", late)) == []
    assert chat.t.on_edit(Edit(C, "help", "m2", "bob: why is the sky blue?", chat.now)) == []


# -- storage round trip ----------------------------------------------------------------------------------------


def test_missing_refs_names_unknown_reply_targets_then_remember_lets_them_link() -> None:
    t = tracker()
    asked = T0 - timedelta(hours=1)
    reply = Message(C, "help", "m9", T0, "bob", "use the disks app", reply_to="q1")
    assert t.missing_refs(reply) == ["q1"]
    q = Question(C, "q1", "help", "alice", asked)
    t.remember([MessageMeta(C, "help", "q1", "alice", asked)], [q], [])
    assert t.missing_refs(reply) == []
    assert answers(t.on_message(reply)) == [("q1", "m9", "reply")]
    assert q.state is QState.ANSWERED


def test_remembered_answer_lets_askers_reaction_credit_its_author() -> None:
    t = tracker()
    q = Question(C, "q1", "help", "alice", T0, state=QState.ANSWERED, answered_by="a1", answers=["a1"])
    t.remember([], [q], [Answer(C, "q1", "a1", "bob", T0 + timedelta(minutes=1), "reply")])
    reaction = Reaction(C, "help", "a1", "alice", "✅", T0 + timedelta(minutes=5))
    assert t.missing_refs(reaction) == []
    [resolved] = t.on_reaction(reaction)
    assert resolved.credited == ("bob",)  # type: ignore[union-attr]


def test_warm_start_restores_the_window_so_position_and_follow_ups_still_work() -> None:
    t = tracker()
    asked = T0 - timedelta(minutes=2)
    q = Question(C, "q1", "help", "alice", asked)
    t.remember([], [q], [])
    t.remember([MessageMeta(C, "help", "q1", "alice", asked)], [], [])
    assert t.on_message(Message(C, "help", "m2", T0, "alice", "it is formatted as exfat")) == []
    bob = Message(C, "help", "m3", T0 + timedelta(seconds=20), "bob", "install exfat-fuse")
    assert answers(t.on_message(bob)) == [("q1", "m3", "position")]
    assert t.on_message(Message(C, "help", "q1", asked, "alice", "How do I mount it?")) == []  # replayed


def test_forget_member_drops_their_questions_and_answers(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app", reply_to="m1")
    chat.say("bob", "Why does apt hang at 99%?", after=timedelta(hours=1))
    chat.t.forget_member(C, "bob")
    q = chat.t.get(C, "m1")
    assert q is not None and q.answers == [] and q.answered_by is None
    assert chat.t.get(C, "m3") is None


# -- bounded memory --------------------------------------------------------------------------------------------


def test_eviction_keeps_memory_bounded_apart_from_open_questions() -> None:
    t = tracker()
    now = T0
    for i in range(3000):
        room = f"room{i % 7}"
        now += timedelta(minutes=1)
        t.on_message(Message(C, room, f"q{i}", now, f"asker{i}", "How do I fix this error in my build?"))
        t.on_message(Message(C, room, f"a{i}", now, f"helper{i % 5}", "try a clean build", reply_to=f"q{i}"))
        t.on_message(Message(C, room, f"c{i}", now, f"chatter{i}", "nice weather today"))
        if i % 100 == 0:
            t.evict(now)
    t.evict(now)
    held = t.held()
    # One day of linger at one question a minute keeps at most ~1440 answered questions, whatever the history.
    assert held["questions"] <= 24 * 60 + 10
    assert held["window_messages"] <= 7 * 20
    assert held["seen_ids"] <= 7 * 256
    t.evict(now + timedelta(days=2))
    assert t.held()["questions"] == 0 and t.held()["owned_ids"] == 0


def test_closed_question_stays_while_active_and_goes_once_idle_for_the_linger(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("bob", "use the disks app", reply_to="m1")
    chat.say("carol", "or udisksctl mount", reply_to="m1", after=timedelta(hours=20))
    chat.t.evict(T0 + timedelta(days=1, hours=1))
    assert chat.t.get(C, "m1") is not None
    chat.t.evict(chat.now + timedelta(days=1, minutes=1))
    assert chat.t.get(C, "m1") is None


def test_stale_and_withdrawn_questions_are_evicted_once_idle(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.say("dave", "Why does apt hang at 99%?")
    chat.t.mark_stale(C, "m1")
    chat.t.on_delete(Delete(C, "help", "m2", chat.now))
    chat.t.evict(chat.now + timedelta(days=2))
    assert (chat.t.get(C, "m1"), chat.t.get(C, "m2")) == (None, None)


def test_open_questions_survive_eviction(chat: Chat) -> None:
    chat.say("alice", "How do I mount a USB drive?")
    chat.t.evict(chat.now + timedelta(days=30))
    assert [q.id for q in chat.t.open_questions()] == ["m1"]


# -- regression pin --------------------------------------------------------------------------------------------

PEOPLE = ("alice", "Bob", "carol", "dave_", "erin", "frank", "gina", "hugo")
ASK = (
    "How do I mount a USB drive on 22.04?",
    "does anyone know why apt hangs at 99%",
    "Is there a way to keep the screen on?",
    "Comment faire pour monter un disque réseau ?",
    "I'm trying to build the kernel module but make fails",
    "which driver do you use for that card?",
    "why is my wifi so slow",
)
SAY = (
    "use the disks app",
    "try sudo dpkg --configure -a",
    "it is in the settings panel, under power",
    "regarde dans /etc/fstab",
    "you need the headers package first",
    "what version are you on?",
    "that's a known bug, upgrade",
)
CHAT = ("lol", "morning all", "the build is green again", "brb", "nice :)", "anyone watching the match tonight")
THANK = ("thanks, that worked!", "merci, ça marche", "ty", "thanks in advance")


def mixed_chat(seed: int = 13, n: int = 240) -> Iterator[Message | Reaction | Edit | Delete]:
    """A reproducible mix of two rooms: "irc" (nick addressing only) and "chat" (also replies and threads)."""
    rnd = random.Random(seed)
    now = T0
    posted: dict[str, list[tuple[str, str]]] = {"irc": [], "chat": []}
    for i in range(n):
        room = "irc" if rnd.random() < 0.6 else "chat"
        now += timedelta(seconds=rnd.choice((5, 20, 40, 90, 300, 1200, 4000)))
        author = rnd.choice(PEOPLE)
        roll = rnd.random()
        prior = posted[room]
        if roll < 0.05 and prior:
            yield Reaction(C, room, rnd.choice(prior[-6:])[0], author, rnd.choice(("✅", "👍", "😂")), now)
            continue
        if roll < 0.07 and prior:
            yield Edit(C, room, prior[-1][0], rnd.choice(ASK), now)
            continue
        if roll < 0.10 and prior:
            yield Delete(C, room, rnd.choice(prior[-2:])[0], now)
            continue
        kw: dict[str, Any] = {}
        if roll < 0.30:
            text = rnd.choice(ASK)
        elif roll < 0.60:
            text = rnd.choice(SAY)
            if prior and rnd.random() < 0.5:
                other = rnd.choice(prior[-5:])[1]
                text = f"{rnd.choice((other, other.lower(), other[:3]))}: {text}"
        elif roll < 0.70:
            text = rnd.choice(THANK)
            if prior and rnd.random() < 0.5:
                text = f"{rnd.choice(prior[-5:])[1]}, {text}"
        else:
            text = rnd.choice(CHAT)
        if room == "chat" and prior and rnd.random() < 0.4:
            kw["reply_to"] = rnd.choice(prior[-5:])[0]
        elif room == "chat" and prior and rnd.random() < 0.15:
            kw["thread"] = rnd.choice(prior[-5:])[0]
        mid = f"{room}{i}"
        prior.append((mid, author))
        yield Message(C, room, mid, now, author, text, **kw)


def replay_lines(events: Iterable[Message | Reaction | Edit | Delete]) -> list[str]:
    t = QuestionTracker(Settings(), window=20, linger=timedelta(hours=6))
    out: list[str] = []
    last: datetime | None = None
    for e in events:
        if isinstance(e, Message):
            changes = t.on_message(e)
        elif isinstance(e, Reaction):
            changes = t.on_reaction(e)
        elif isinstance(e, Edit):
            changes = t.on_edit(e)
        else:
            changes = t.on_delete(e)
        for c in changes:
            if isinstance(c, Opened):
                out.append(f"open {c.question.id}")
            elif isinstance(c, Linked):
                out.append(f"link {c.question.id} {c.answer.message} {c.answer.how}")
            elif isinstance(c, Resolved):
                out.append(f"resolve {c.question.id} by {c.by} credit {','.join(c.credited) or '-'}")
            else:
                out.append(f"withdraw {c.question.id}")
        if last is None or e.ts - last > timedelta(hours=1):
            t.evict(e.ts)
            last = e.ts
    return out


# Pinned before the tracker was optimised for speed: a change here is a change of linking behaviour, to be made
# on purpose (and checked against `python -m bot.evaluation`), never as a side effect of a speed-up.
# Changed on purpose once since: irc8 is linked by turn, not by position (erin was talking to carol).
MIXED_CHAT_CHANGES = """
open irc7
link irc7 irc8 turn
open chat12
link chat12 chat13 thread
open irc14
open irc20
link irc20 irc21 position
open irc25
link irc20 irc31 turn
open chat34
link chat34 chat35 position
withdraw chat34
open chat38
withdraw chat38
open irc41
open irc43
open chat46
link irc43 irc47 position
open chat51
link irc41 irc59 reaction
resolve irc41 by erin credit frank
link irc14 irc62 mention
open irc66
link irc66 irc67 position
open irc71
link irc71 irc77 mention
open irc90
link irc90 irc92 mention
open irc96
open irc97
link irc97 irc98 position
resolve irc97 by alice credit carol
link irc96 irc103 mention
open irc114
open irc115
link irc115 irc116 position
open chat118
open irc117
link irc115 irc120 conversation
link irc117 irc121 position
link chat118 chat123 mention
link chat51 chat124 mention
link irc117 irc126 conversation
link chat51 chat128 turn
link chat51 chat136 turn
link irc114 irc138 mention
open irc141
link irc141 irc144 position
link chat51 chat156 mention
open irc157
link chat51 chat158 thread
link irc157 irc160 mention
link chat51 chat162 reply
link irc157 irc166 mention
open irc172
link irc172 irc173 position
open irc175
open irc183
open irc184
open chat185
open irc189
open irc195
link irc195 irc196 mention
open irc197
link irc197 irc201 position
open irc203
link irc203 irc206 position
open chat207
open irc209
open irc210
link chat207 chat213 reply
link chat185 chat213 mention
link irc210 irc215 position
open irc223
link irc175 irc224 mention
open irc227
link chat185 chat231 mention
link irc210 irc233 mention
link irc210 irc234 conversation
open irc239
"""


def test_mixed_chat_replay_gives_the_pinned_changes() -> None:
    assert replay_lines(mixed_chat()) == MIXED_CHAT_CHANGES.split("\n")[1:-1]


@pytest.mark.parametrize(
    "how",
    [{}, {"reply_to": "m1"}, {"mentions": ("alice",)}],
    ids=["position", "reply", "mention"],
)
def test_a_message_written_before_the_question_never_answers_it(chat: Chat, how: dict[str, Any]) -> None:
    """A late delivery (backfill, a file out of time order) stamped before the question is not its answer: linked,
    it would give a negative time to first answer."""
    assert kinds(chat.say("alice", "How do I rotate the logs of the proxy?")) == ["Opened"]
    assert chat.say("bob", "use logrotate with copytruncate", after=timedelta(minutes=-5), **how) == []
    q = chat.t.get(C, "m1")
    assert q is not None and q.state is QState.OPEN and q.answers == [] and q.first_answer_ts is None
    # The same words a minute after the question do answer it.
    assert kinds(chat.say("bob", "use logrotate with copytruncate", after=timedelta(minutes=6), **how)) == ["Linked"]
    assert q.state is QState.ANSWERED and q.first_answer_ts == chat.now


def test_a_thanks_written_before_the_question_does_not_resolve_it(chat: Chat) -> None:
    chat.say("alice", "How do I rotate the logs of the proxy?")
    chat.say("bob", "use logrotate with copytruncate", reply_to="m1")
    assert chat.say("alice", "thanks, that worked!", reply_to="m2", after=timedelta(hours=-1)) == []
    q = chat.t.get(C, "m1")
    assert q is not None and q.state is QState.ANSWERED and q.resolved_ts is None
    assert kinds(chat.say("alice", "thanks, that worked!", reply_to="m2", after=timedelta(hours=2))) == ["Resolved"]

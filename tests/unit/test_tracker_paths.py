"""The per-message fast paths of the tracker and the text tests: shortcuts that must decide as the long way does."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from bot import detection
from bot.config import Settings
from bot.detection import Reading, is_chatter, is_help_request, is_personal, is_question, is_thanks
from bot.events import Message
from bot.tracker import Linked, Opened, QuestionTracker

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)

TEXTS = [
    "How do I mount a USB drive on 22.04?",
    "good morning everyone",
    "hi all, how are you?",
    "the release notes are out",
    "Does anyone know why the deploy fails with a timeout?",
    "I'm trying to install docker, any idea",
    "I need help with my wifi card",
    "Comment est-ce qu'on active les logs détaillés ?",
    "«quelqu'un» sait comment faire… merci",
    "ça marche, merci !",
    "thanks in advance",
    "bob: thanks, that worked!",
    "@alice have you tried a reboot",
    "hiii folks what's up?",
    "youtube-dl is broken again",
    "x\ud800y, anyone know?",
    "",
    "?!",
]


def _reference_words(s: str) -> list[str]:
    """The definition of `_words`, one character at a time."""
    return "".join(" " if c in detection._PUNCT else c for c in s).split()


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii, words.",
        "«quoted» “curly” end…",
        "café,crème",
        "a\u00a0b\u2003c",
        "lone \ud800 surrogate?",
        "emoji👍and,text",
        "tab\tand\nnewline",
        "",
    ],
)
def test_words_split_on_punctuation_beyond_ascii_as_on_ascii(text: str) -> None:
    assert detection._words(text) == _reference_words(text)


def test_the_two_letter_gate_of_chatter_openers_sees_every_word() -> None:
    # `_CHATTER_HEADS` may rule a first word out by its first two letters only if every listed word has two.
    words = [*detection._CHATTER_FIRST, *detection._CHATTER_OPENERS]
    assert all(len(w) >= 2 and w[:2] in detection._CHATTER_HEADS for w in words)


@pytest.mark.parametrize("text", TEXTS)
def test_a_reading_answers_alike_whatever_the_order_of_the_tests(text: str) -> None:
    expected = {
        "question": is_question(text),
        "help": is_help_request(text),
        "personal": is_personal(text),
        "chatter": is_chatter(text),
        "thanks": is_thanks(text),
    }
    for order in itertools.permutations(expected, 3):
        r = Reading(text)
        assert {name: getattr(r, name)() for name in order} == {name: expected[name] for name in order}


def _tracker(**questions: object) -> QuestionTracker:
    return QuestionTracker(Settings.model_validate({"questions": questions}), window=20)


def _say(tr: QuestionTracker, n: int, author: str, text: str, **kw: object) -> list[object]:
    m = Message("c", "help", f"m{n}", T0 + timedelta(seconds=30 * n), author, text, **kw)  # type: ignore[arg-type]
    return list(tr.on_message(m))


def test_mentioning_only_oneself_is_not_addressing_and_still_asks() -> None:
    tr = _tracker()
    [opened] = _say(tr, 1, "alice", "How do I mount a USB drive?", mentions=("alice",))
    assert isinstance(opened, Opened)


def test_a_help_request_is_no_first_reply_to_the_question_before_it() -> None:
    tr = _tracker()
    _say(tr, 1, "alice", "How do I mount a USB drive?")
    changes = _say(tr, 2, "bob", "I'm trying to install docker, does anyone know how")
    assert [type(c) for c in changes] == [Opened]


def test_asking_again_soon_follows_up_the_open_question() -> None:
    tr = _tracker()
    _say(tr, 1, "alice", "How do I mount a USB drive?")
    assert _say(tr, 2, "alice", "does anyone know how to mount it?") == []
    [linked] = _say(tr, 3, "bob", "try sudo mount -a")
    assert isinstance(linked, Linked) and linked.question.id == "m1"


def test_a_reply_asks_only_when_it_replies_to_its_author() -> None:
    tr = _tracker()
    _say(tr, 1, "bob", "the build is green again")
    _say(tr, 2, "alice", "the release notes are out")
    assert _say(tr, 3, "alice", "How do I mount a USB drive?", reply_to="m1") == []
    [opened] = _say(tr, 4, "alice", "How do I mount a USB drive?", reply_to="m2")
    assert isinstance(opened, Opened) and opened.question.id == "m4"


def test_nothing_opens_when_questions_are_off() -> None:
    tr = _tracker(mode="off")
    assert _say(tr, 1, "alice", "How do I mount a USB drive?") == []

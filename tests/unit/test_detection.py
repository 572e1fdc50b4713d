"""Question, help-request, thanks and small-talk detection, in English and French, as table tests."""

from __future__ import annotations

import pytest

from bot.detection import (
    Reading,
    addressee,
    is_chatter,
    is_help_request,
    is_personal,
    is_question,
    is_thanks,
    strip_addressing,
)

QUESTIONS = [
    ("qmark", "How do I mount a USB drive on 22.04?"),
    ("qmark-then-emoticon", "how do I mount this? :-)"),
    ("qmark-then-emoji", "does this work on arm64? 🙂"),
    ("qmark-then-link", "is this the right doc? https://example.org/doc?page=2"),
    ("qmark-mid-sentence", "why does apt hang? it sits at 99% forever"),
    ("irc-addressed", "HrdwrBoB: ok how many partitions should i make?"),
    ("opening-without-qmark", "how can i install that thing"),
    ("opening-after-greeting", "hi all, is there a way to keep the screen on"),
    ("can-you", "can you recommend an app to open rar files"),
    ("does-anyone", "does anyone know the gnome equivalent of katapult"),
    ("anyone-know", "anyone know why grub ignores my timeout"),
    ("any-idea", "any idea what sets the spindown time by default"),
    ("help-phrase", "I need help with my wifi card, it drops every minute"),
    ("is-there-a-way", "so is there a way to run two versions side by side"),
    ("placeholder-code", "where is this configured [<-CODE->]"),
    ("fr-comment", "comment faire pour monter un disque réseau"),
    ("fr-pourquoi", "pourquoi mon script ne se lance pas au démarrage"),
    ("fr-est-ce-que", "est-ce que quelqu'un a déjà vu cette erreur"),
    ("fr-quelquun-sait", "Quelqu'un sait comment configurer le proxy"),
    ("fr-besoin-aide", "j'ai besoin d'aide pour installer docker"),
    ("fr-une-idee", "le build échoue depuis hier, une idée ?"),
    ("fr-inversion", "peut-on changer le port par défaut"),
    ("fr-qmark", "Vous utilisez quoi pour les sauvegardes ?"),
]

NOT_QUESTIONS = [
    ("ack-qmark", "ok?"),
    ("really", "really?"),
    ("laugh", "lol"),
    ("greeting", "hi"),
    ("greeting-how-are-you", "hi all, how are you?"),
    ("are-you-sure", "are you sure?"),
    ("presence-check", "is anyone here?"),
    ("statement", "sarge wont be released until i have grandkids"),
    ("imperative-do", "do it like this and then reboot"),
    ("goodbye", "night all :)"),
    ("url-query-string", "see http://example.org/?q=foo for the details"),
    ("what-a", "what a mess this upgrade was"),
    ("fr-ca-va", "salut, ça va ?"),
    ("fr-vraiment", "ah bon ?"),
    ("fr-statement", "ça marche très bien chez moi"),
    ("empty", ""),
]


@pytest.mark.parametrize("text", [t for _, t in QUESTIONS], ids=[i for i, _ in QUESTIONS])
def test_question_detected(text: str) -> None:
    assert is_question(text)


@pytest.mark.parametrize("text", [t for _, t in NOT_QUESTIONS], ids=[i for i, _ in NOT_QUESTIONS])
def test_non_question_rejected(text: str) -> None:
    assert not is_question(text)


def test_min_words_is_respected() -> None:
    assert is_question("why not this?", min_words=3)
    assert not is_question("why not this?", min_words=4)


THANKS = [
    ("thanks", "thanks!"),
    ("thank-you-addressed", "jdub: thank you, that fixed it"),
    ("thx", "thx a lot"),
    ("ty", "ty"),
    ("cheers", "cheers mate"),
    ("solved", "solved, it was the firewall"),
    ("fixed", "fixed"),
    ("that-worked", "that worked, brilliant"),
    ("it-works", "it works now :)"),
    ("fr-merci", "merci beaucoup !"),
    ("fr-resolu", "résolu, c'était le pare-feu"),
    ("fr-ca-marche", "ça marche"),
]
NOT_THANKS = [
    ("no-thanks", "no thanks, I'll keep the old one"),
    ("in-advance", "how do I do X? thanks in advance"),
    ("tia", "any idea why it crashes, tia"),
    ("anyway", "thanks anyway"),
    ("question", "thanks, but how do I undo it?"),
    ("not-fixed", "still not fixed after the reboot"),
    ("doesnt-work", "it works on windows but doesn't work here"),
    ("word-containing-ty", "pretty empty output"),
    ("fr-d-avance", "merci d'avance"),
    ("fr-ne-marche-pas", "ça ne marche pas"),
    ("fr-quand-meme", "merci quand même"),
]


@pytest.mark.parametrize("text", [t for _, t in THANKS], ids=[i for i, _ in THANKS])
def test_thanks_detected(text: str) -> None:
    assert is_thanks(text)


@pytest.mark.parametrize("text", [t for _, t in NOT_THANKS], ids=[i for i, _ in NOT_THANKS])
def test_non_thanks_rejected(text: str) -> None:
    assert not is_thanks(text)


HELP_REQUESTS = [
    ("anyone", "does anyone know how to import tikiwiki data"),
    ("anyone-experience", "Anyone have experience setting up Mathoid for several wikis?"),
    ("trying", "I'm trying to publish a crate with a git dependency"),
    ("how-do-you", "how do you upload bulk images?"),
    ("possible", "is it possible to overload the call operator"),
    ("if-i-want", "If I have a macro and I want to give it named fields"),
    ("fr-je-cherche", "je cherche un moyen de limiter la bande passante"),
]
REPLIES = [
    ("suggestion", "apply the print stylesheet?"),
    ("clarifying", "what version are you using?"),
    ("advice", "I think you need to restart the daemon"),
]


@pytest.mark.parametrize("text", [t for _, t in HELP_REQUESTS], ids=[i for i, _ in HELP_REQUESTS])
def test_help_request_detected(text: str) -> None:
    assert is_help_request(text)


@pytest.mark.parametrize("text", [t for _, t in REPLIES], ids=[i for i, _ in REPLIES])
def test_replies_are_not_help_requests(text: str) -> None:
    assert not is_help_request(text)


@pytest.mark.parametrize(
    ("text", "chatter"),
    [
        ("hi", True),
        ("lol", True),
        ("hehe :)", True),
        ("bergman, hi", True),
        ("good night all", True),
        (":)", True),
        ("same problem here", True),
        ("me too :(", True),
        ("I'm having the same issue since 1.2", True),
        ("moi aussi", True),
        ("ctrl+alt+f1", False),
        ("file-roller", False),
        ("yes", False),
        ("use the same key for both", False),
    ],
    ids=[
        "hi",
        "lol",
        "hehe",
        "addressed-hi",
        "good-night",
        "smiley",
        "same-here",
        "me-too",
        "same-issue",
        "fr-moi-aussi",
        "key-combo",
        "one-word-answer",
        "yes",
        "same-in-an-answer",
    ],
)
def test_chatter(text: str, chatter: bool) -> None:
    assert is_chatter(text) is chatter


@pytest.mark.parametrize(
    ("text", "nick", "rest"),
    [
        ("jdub: it is in universe", "jdub", "it is in universe"),
        ("Hikaru79, why not WinRAR?", "Hikaru79", "why not WinRAR?"),
        ("@alice have you tried a reboot", "alice", "have you tried a reboot"),
        ("Hi, is there a way", None, "Hi, is there a way"),
        ("so, how do I", None, "so, how do I"),
        ("http://example.org is down", None, "http://example.org is down"),
        ("plain text", None, "plain text"),
    ],
    ids=["colon", "comma", "at", "greeting-comma", "so-comma", "url", "none"],
)
def test_addressing(text: str, nick: str | None, rest: str) -> None:
    assert addressee(text) == nick
    assert strip_addressing(text) == rest


@pytest.mark.parametrize(
    ("text", "personal"),
    [
        ("how do I mount it?", True),
        ("my drive will not mount", True),
        ("est-ce que je dois redémarrer ?", True),
        ("can you show me the output of lsblk?", False),
        ("tell me which version you run", False),
        ("which filesystem is on it?", False),
    ],
    ids=["i", "my", "fr-je", "show-me", "tell-me", "none"],
)
def test_personal_is_about_the_author_as_subject_or_owner(text: str, personal: bool) -> None:
    assert is_personal(text) is personal


@pytest.mark.parametrize(
    "text",
    [t for _, t in QUESTIONS + NOT_QUESTIONS + THANKS + NOT_THANKS + HELP_REQUESTS + REPLIES]
    + ["bob: thanks, that worked!", "@alice have you tried a reboot", "Error: disk full"],
)
def test_one_reading_answers_every_test_like_the_functions(text: str) -> None:
    r = Reading(text)
    assert (r.nick, r.question(), r.help(), r.personal(), r.chatter(), r.thanks()) == (
        addressee(text),
        is_question(text),
        is_help_request(text),
        is_personal(text),
        is_chatter(text),
        is_thanks(text),
    )

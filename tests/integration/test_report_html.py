"""The report page as text: self-contained, pseudonymous by default, escaped, linked, bounded in size."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from adapters.report_html import (
    NameBook,
    Pseudonyms,
    ReportOptions,
    build_report,
    question_url,
)
from bot.events import Message
from bot.model import HelpEdge, QState, Question

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
C = "guild"
NOW = datetime(2026, 4, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def history(community: str = C, room: str = "help") -> tuple[list[Question], list[HelpEdge]]:
    """Three weeks: alice and bob help each other, carol is helped, dave's question is never answered."""
    qs = [
        Question(community, "1", room, "alice", at(0), state=QState.RESOLVED, first_answer_ts=at(0.2)),
        Question(community, "2", room, "bob", at(30), state=QState.ANSWERED, first_answer_ts=at(31)),
        Question(community, "3", room, "carol", at(200), state=QState.ANSWERED, first_answer_ts=at(230)),
        Question(community, "4", room, "dave", at(400), state=QState.STALE),
    ]
    es = [
        HelpEdge(community, room, "bob", "alice", "1", "answer", at(0.2)),
        HelpEdge(community, room, "alice", "bob", "2", "answer", at(31)),
        HelpEdge(community, room, "alice", "carol", "3", "answer", at(230)),
    ]
    return qs, es


def options(**kw: object) -> ReportOptions:
    return ReportOptions(salt="s3cret", generated=NOW, **kw)  # type: ignore[arg-type]


def page_data(page: str) -> dict[str, object]:
    raw = re.search(r'<script type="application/json" id="lien-data">(.*?)</script>', page, re.S)
    assert raw is not None
    return json.loads(raw.group(1))  # type: ignore[no-any-return]


def test_the_page_loads_nothing_from_the_network() -> None:
    page = build_report(*history(), options())
    assert "Content-Security-Policy" in page and "connect-src 'none'" in page
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", page, re.I)
    assert "sourceMappingURL" not in page
    assert page.count("<script") == 4  # the data, Chart.js, Cytoscape.js and lien's own script
    assert "Chart.js v4.6.1" in page and "cytoscape" in page.lower()


def test_members_are_pseudonymous_unless_names_are_asked_for() -> None:
    qs, es = history()
    names = {(C, "alice"): "Alice Liddell"}
    hidden = build_report(qs, es, options(names=names))
    assert "Alice Liddell" not in hidden
    assert not re.search(r"[\"'>]alice[\"'<]", hidden)  # nor the member id ("aliceblue" is a library's colour)
    assert re.search(r"member-[0-9a-f]{6}", hidden)
    shown = build_report(qs, es, options(names=names, show_names=True))
    assert "Alice Liddell" in shown


def test_hostile_names_are_escaped_in_html_and_in_the_data() -> None:
    qs, es = history()
    evil = "</script><script>alert(1)</script><b>"
    page = build_report(qs, es, options(names={(C, "alice"): evil}, show_names=True))
    assert evil not in page and "<script>alert" not in page
    nodes = page_data(page)["communities"][0]["graph"]["nodes"]  # type: ignore[index]
    assert any(n["name"] == evil for n in nodes)  # intact once parsed, drawn as canvas text only


def test_two_members_with_one_display_name_stay_apart() -> None:
    qs, es = history()
    page = build_report(qs, es, options(names={(C, "alice"): "Sam", (C, "bob"): "Sam"}, show_names=True))
    names = {n["name"] for n in page_data(page)["communities"][0]["graph"]["nodes"]}  # type: ignore[index]
    assert len([n for n in names if n.startswith("Sam (member-")]) == 2


def test_pseudonyms_are_stable_per_salt_and_unique() -> None:
    members = [f"user{i}" for i in range(5000)]
    a = Pseudonyms("salt", C, members)
    again = Pseudonyms("salt", C, reversed(members))
    other = Pseudonyms("pepper", C, members)
    assert all(a(m) == again(m) for m in members)
    assert sum(a(m) == other(m) for m in members) < 5
    assert len({a(m) for m in members}) == len(members)  # collisions of 6 digits get longer labels
    assert all(re.fullmatch(r"member-[0-9a-f]{6,}", a(m)) for m in members)


@pytest.mark.parametrize(
    ("community", "room", "thread", "expected"),
    [
        ("123456789012345678", "223456789012345678", None,
         "https://discord.com/channels/123456789012345678/223456789012345678/323456789012345678"),
        ("123456789012345678", "223456789012345678", "423456789012345678",
         "https://discord.com/channels/123456789012345678/423456789012345678/323456789012345678"),
        ("example.org", "!abc:example.org", None,
         "https://matrix.to/#/!abc:example.org/$ev:example.org?via=example.org"),
        ("gitter:gitter", "gitter/nodejs", None, None),
    ],
    ids=["discord", "discord-thread", "matrix", "no-link-for-other-platforms"],
)
def test_question_links_follow_the_platform(community: str, room: str, thread: str | None,
                                            expected: str | None) -> None:
    qid = "$ev:example.org" if room.startswith("!") else "323456789012345678"
    assert question_url(community, Question(community, qid, room, "a", T0, thread=thread)) == expected


def test_unanswered_questions_are_listed_with_their_links() -> None:
    qs, es = history(community="123456789012345678", room="223456789012345678")
    page = build_report(qs, es, options())
    assert "https://discord.com/channels/123456789012345678/223456789012345678/4" in page
    assert page.count("<tr><td>2026-") == 1  # only dave's question: the others were answered


def test_big_networks_are_cut_to_the_most_involved_members_with_a_note() -> None:
    qs: list[Question] = []
    es = [HelpEdge(C, "help", f"h{i % 40}", f"a{i}", f"q{i}", "answer", at(i / 10)) for i in range(400)]
    page = build_report(qs, es, options(max_nodes=50))
    graph = page_data(page)["communities"][0]["graph"]  # type: ignore[index]
    assert 0 < len(graph["nodes"]) <= 50
    assert "Showing" in page and "of the 440 members" in page


def test_several_communities_get_one_section_each() -> None:
    q1, e1 = history("one")
    q2, e2 = history("two")
    page = build_report(q1 + q2, e1 + e2, options())
    assert [c["key"] for c in page_data(page)["communities"]] == ["c0", "c1"]  # type: ignore[index]
    assert "href='#c1'" in page


def test_an_empty_history_still_makes_a_page() -> None:
    page = build_report([], [], options())
    assert "nothing to report yet" in page and page_data(page) == {"communities": []}


def test_the_name_book_remembers_display_names_and_passes_events_through() -> None:
    book = NameBook()
    events = [Message(C, "help", "m1", T0, "u1", "hi", author_name="Ann"),
              Message(C, "help", "m2", T0, "u2", "hello")]
    assert list(book.watch(events)) == events
    assert book.names == {(C, "u1"): "Ann"}

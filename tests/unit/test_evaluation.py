"""Scoring of detection and linking against gold labels, on tiny hand-made datasets (never on shared data)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.evaluation import (
    Gold,
    Prediction,
    Prf,
    format_scores,
    main,
    naive_links,
    read_events,
    read_gold,
    run_eval,
    score,
    score_detection,
)
from bot.events import Message

T0 = datetime(2020, 5, 1, 12, 0, tzinfo=UTC)


def gold(id: str, answers: tuple[str, ...] = (), *, help_request: bool = False, censored: bool = False) -> Gold:
    return Gold(id, frozenset(answers), help_request, censored)


def test_prf_handles_empty_counts() -> None:
    assert (Prf().precision, Prf().recall, Prf().f1) == (0.0, 0.0, 0.0)
    p = Prf(tp=3, fp=1, fn=2)
    assert (p.precision, p.recall) == (0.75, 0.6)
    assert p.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_linking_counts_each_question_once_and_skips_censored_and_unlabelled() -> None:
    labels = {
        "q1": gold("q1", ("a1", "a2")),  # found one gold answer: tp
        "q2": gold("q2", ("a3",)),  # linked a wrong one: fp and fn
        "q3": gold("q3"),  # linked something, gold unanswered: fp
        "q4": gold("q4", ("a4",)),  # nothing linked: fn
        "q5": gold("q5"),  # nothing linked, gold unanswered
        "q6": gold("q6", ("a6",), censored=True),  # not scored
    }
    preds = {
        "q1": Prediction(frozenset({"a2", "x"}), False),
        "q2": Prediction(frozenset({"x"}), False),
        "q3": Prediction(frozenset({"y"}), False),
        "q4": Prediction(frozenset(), True),
        "q5": Prediction(frozenset(), True),
        "q6": Prediction(frozenset(), True),
        "q7": Prediction(frozenset({"z"}), False),  # unlabelled
    }
    linking, unanswered, n = score(labels, preds)
    assert n == 5
    assert linking == Prf(tp=1, fp=2, fn=2)
    # Positive class "unanswered": q5 right, q4 wrongly nudged, q3 missed.
    assert unanswered == Prf(tp=1, fp=1, fn=1)


def test_detection_against_help_request_proxy() -> None:
    labels = {
        "m1": gold("m1", ("m2",), help_request=True),
        "m2": gold("m2"),
        "m3": gold("m3", help_request=True),
        "m4": gold("m4", ("m5",), help_request=True, censored=True),
    }
    detection, answered = score_detection(labels, detected={"m1", "m2", "m9"}, humans=["m1", "m2", "m3", "m4", "m9"])
    assert detection == Prf(tp=1, fp=1, fn=2)
    assert answered == Prf(tp=1, fp=0, fn=0)  # m4 is censored, m3 got no answer


def msg(id: str, author: str, text: str, seconds: int, **kw: Any) -> Message:
    return Message("c", "r", id, T0 + timedelta(seconds=seconds), author, text, **kw)


def test_naive_reference_links_mentions_replies_and_the_first_quick_message() -> None:
    messages = [
        msg("q", "alice", "how do I X?", 0),
        msg("a1", "bob", "unrelated", 60),
        msg("a2", "alice", "hello?", 70),
        msg("a3", "carol", "alice: do Y", 600, mentions=("alice",)),
        msg("a4", "dave", "see above", 900, reply_to="q"),
        msg("q2", "erin", "why Z?", 1000),
        msg("b1", "frank", "too late", 1200),
    ]
    links = naive_links(messages, ["q", "q2"])
    assert links["q"] == Prediction(frozenset({"a1", "a3", "a4"}), False)
    assert links["q2"] == Prediction(frozenset(), True)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def event(id: str, author: str, text: str, minute: int, **kw: Any) -> dict[str, Any]:
    ts = (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    return {"type": "message", "community": "irc:#x", "room": "#x/1", "id": id, "ts": ts, "author": author,
            "text": text, "reply_to": None, "thread": None, "mentions": [], "is_bot": False, **kw}  # fmt: skip


def label(id: str, answers: list[str], *, proxy: bool = False, censored: bool = False) -> dict[str, Any]:
    return {"id": id, "room": "#x/1", "parents": [], "conversation": f"c-{id}", "conv_start": proxy,
            "answers_direct": answers, "answers_conv": answers, "has_qmark": False,
            "help_request_proxy": proxy, "censored": censored}  # fmt: skip


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-irc"
    folder.mkdir()
    write_jsonl(
        folder / "events.jsonl",
        [
            {"type": "member_join", "community": "irc:#x", "author": "bob", "ts": "2020-05-01T11:59:00Z"},
            event("1", "alice", "how do I mount a usb drive?", 0),
            event("2", "bob", "alice: use the disks app", 1, mentions=["alice"]),
            event("3", "alice", "bob: thanks!", 2, mentions=["bob"]),
            event("4", "carol", "does anyone know why apt hangs at 99%?", 30),
            event("5", "ubottu", "carol: see the apt FAQ", 31, is_bot=True),
            event("6", "dave", "the weather is nice", 200),
        ],
    )
    write_jsonl(
        folder / "gold.jsonl",
        [
            label("1", ["2"], proxy=True),
            label("2", ["3"]),
            label("3", []),
            label("4", [], proxy=True),
            label("6", [], proxy=True),
        ],
    )
    return tmp_path


def test_readers_keep_file_order_and_pick_direct_answers(data_dir: Path) -> None:
    events = read_events(data_dir / "tiny-irc" / "events.jsonl")
    assert [e.id for e in events] == ["1", "2", "3", "4", "5", "6"]  # type: ignore[union-attr]
    assert events[0].ts.tzinfo is not None
    labels = read_gold(data_dir / "tiny-irc" / "gold.jsonl")
    assert labels["1"] == Gold("1", frozenset({"2"}), True, False)


def test_run_eval_scores_a_tiny_dataset_end_to_end(data_dir: Path) -> None:
    [s] = run_eval(data_dir)
    assert (s.name, s.events, s.questions) == ("tiny-irc", 6, 2)
    # Questions 1 and 4 are tracked; "the weather is nice" (proxy) is missed.
    assert s.detection == Prf(tp=2, fp=0, fn=1)
    assert s.linking == Prf(tp=1, fp=0, fn=0)
    # Question 4 only got a bot reply: lien keeps it unanswered, as the gold does.
    assert s.unanswered == Prf(tp=1, fp=0, fn=0)
    table = format_scores([s])
    assert "tiny-irc" in table and "naive" in table


def test_main_prints_the_table_and_fails_on_a_folder_without_datasets(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data", str(data_dir)]) == 0
    assert "tiny-irc" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--data", str(empty)]) == 2
    assert main(["--data", str(tmp_path / "missing")]) == 2

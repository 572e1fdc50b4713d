"""Help edges: who helped whom on which question, derived from the tracker's changes.

One derivation for everything that records help: the engine stores these edges, the history replay of
`lien report` (`bot.history`) keeps them in memory, and both must agree edge for edge.
"""

from __future__ import annotations

from datetime import datetime

from bot.model import HelpEdge
from bot.tracker import Change, Linked, Resolved

ANSWER = "answer"
CREDIT = "credit"


def edges_of(change: Change, now: datetime) -> list[HelpEdge]:
    """The help edges `change` records: a `Linked` answer gives one `answer` edge from the answer's author, at the
    answer's time; a `Resolved` gives one `credit` edge per newly credited member, at the question's resolution
    time (`now` if it has none); `Opened` and `Withdrawn` give none."""
    q = change.question
    if type(change) is Linked:
        a = change.answer
        return [HelpEdge(q.community, q.room, a.author, q.author, q.id, ANSWER, a.ts)]
    if type(change) is Resolved:
        ts = q.resolved_ts or now
        return [HelpEdge(q.community, q.room, who, q.author, q.id, CREDIT, ts) for who in change.credited]
    return []

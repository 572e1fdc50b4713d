"""`lien report`: one self-contained HTML page of community health, built from questions and help edges.

The page opens offline: Chart.js and Cytoscape.js (vendored in `report_assets/` with their licences) and lien's own
script and style are inlined, and a Content-Security-Policy forbids any network access. Members are pseudonymous
by default ("member-7f3a9c", a salted hash that stays the same for the same salt); display names appear only when
asked for and known. No message text is ever used: the inputs carry none.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from bot import health
from bot.digest import UNDEFINED, arrow, duration, share
from bot.events import Event, Message
from bot.health import Health
from bot.model import HelpEdge, QState, Question

ASSETS = Path(__file__).resolve().parent / "report_assets"
#: Vendored libraries: (file, name, version, licence file). Update `report_assets/README.md` with them.
LIBRARIES = (
    ("chart.umd.min.js", "Chart.js", "4.6.1", "chart.js.LICENSE.md"),
    ("cytoscape.min.js", "Cytoscape.js", "3.35.0", "cytoscape.LICENSE"),
)
#: Upper bounds on time to first answer for the per-room distribution, with their labels.
BUCKETS: tuple[tuple[float, str], ...] = (
    (5 * 60, "< 5 min"), (30 * 60, "5–30 min"), (2 * 3600, "30 min–2 h"), (8 * 3600, "2–8 h"),
    (24 * 3600, "8–24 h"), (3 * 86400, "1–3 days"), (float("inf"), "> 3 days"),
)
NO_ANSWER = "no answer"
_SNOWFLAKE = re.compile(r"\d{15,21}")
_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
        "font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'")


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """How to draw the report; `salt` keys the pseudonyms (keep it secret and stable to keep them stable)."""

    salt: str
    generated: datetime
    source: str = ""
    #: Display names by (community, member id), shown only when `show_names` is set.
    names: Mapping[tuple[str, str], str] = field(default_factory=dict)
    show_names: bool = False
    max_nodes: int = 150
    max_rooms: int = 15
    max_unanswered: int = 300
    #: Nodes labelled on the graph itself (the others on tap), the most helpful first.
    max_labels: int = 20
    #: "Now" for waiting times: the generation time for a live database; None means the latest activity seen.
    as_of: datetime | None = None


class NameBook:
    """Display names seen in events (`author_name`), by (community, member id); the latest one wins."""

    def __init__(self) -> None:
        self.names: dict[tuple[str, str], str] = {}

    def watch(self, events: Iterable[Event]) -> Iterator[Event]:
        """Pass `events` through, noting the names of message authors."""
        names = self.names
        for ev in events:
            if type(ev) is Message and ev.author_name:
                names[(ev.community, ev.author)] = ev.author_name
            yield ev


def new_salt() -> str:
    """A random salt: pseudonyms stable within one report only."""
    return secrets.token_hex(16)


class Pseudonyms:
    """Stable, unlinkable member labels: "member-" and 6 hex digits of a salted BLAKE2b, longer on a collision."""

    def __init__(self, salt: str, community: str, members: Iterable[str]) -> None:
        key = hashlib.blake2b(salt.encode(), digest_size=32).digest()
        digests = {m: hashlib.blake2b(f"{community}\x00{m}".encode(), key=key, digest_size=16).hexdigest()
                   for m in sorted(set(members))}
        self.labels: dict[str, str] = {}
        width = 6
        pending = dict(digests)
        while pending:
            by_prefix: dict[str, list[str]] = defaultdict(list)
            for m, d in pending.items():
                by_prefix[d[:width]].append(m)
            pending = {}
            for prefix, ms in by_prefix.items():
                if len(ms) == 1 or width >= 32:
                    for m in ms:
                        self.labels[m] = f"member-{prefix}"
                else:
                    pending.update({m: digests[m] for m in ms})
            width += 2

    def __call__(self, member: str) -> str:
        return self.labels.get(member, "member-?")


def question_url(community: str, q: Question) -> str | None:
    """A link to the question where the platform has one: Discord (snowflake community) or Matrix (`!` room)."""
    if _SNOWFLAKE.fullmatch(community) and _SNOWFLAKE.fullmatch(q.room):
        return f"https://discord.com/channels/{community}/{q.thread or q.room}/{q.id}"
    if q.room.startswith("!"):
        room = quote(q.room, safe="!:")
        event = quote(q.id, safe="$:")
        server = q.room.partition(":")[2]
        via = f"?via={quote(server, safe='')}" if server else ""
        return f"https://matrix.to/#/{room}/{event}{via}"
    return None


# -- data for the page -----------------------------------------------------------------------------------------


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(max(seconds, 1.0) / 3600, 4)


def _weeks(weeks: Sequence[Health]) -> dict[str, list[object]]:
    return {
        "labels": [health.week_label(w.start) for w in weeks],
        "questions": [w.questions for w in weeks],
        "answer_rate": [_pct(w.answer_rate) for w in weeks],
        "resolved_share": [_pct(w.resolved_share) for w in weeks],
        "median_h": [_hours(w.median_first_answer) for w in weeks],
        "p90_h": [_hours(w.p90_first_answer) for w in weeks],
        "reciprocity": [_pct(w.reciprocity) for w in weeks],
        "both_share": [_pct(w.both_share) for w in weeks],
        "density": [None if w.density is None else round(100 * w.density, 3) for w in weeks],
        "top_share": [_pct(w.top_share) for w in weeks],
        "half_helpers": [w.half_helpers for w in weeks],
        "newcomers_answered_share": [_pct(w.newcomers_answered_share) for w in weeks],
        "members": [w.members for w in weeks],
    }


def _bucket(seconds: float) -> int:
    for i, (bound, _) in enumerate(BUCKETS):
        if seconds < bound:
            return i
    return len(BUCKETS) - 1


def _rooms(questions: Sequence[Question], limit: int) -> dict[str, object]:
    """Per room (the busiest `limit`, the rest pooled), questions by time to first answer, plus "no answer"."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
    for q in questions:
        if q.state == QState.WITHDRAWN:
            continue
        row = counts[q.room]
        if q.first_answer_ts is None:
            row[-1] += 1
        else:
            row[_bucket((q.first_answer_ts - q.asked_ts).total_seconds())] += 1
    ranked = sorted(counts, key=lambda r: (-sum(counts[r]), r))
    shown, rest = ranked[:limit], ranked[limit:]
    rows = [(r, counts[r]) for r in shown]
    if rest:
        pooled = [sum(counts[r][i] for r in rest) for i in range(len(BUCKETS) + 1)]
        rows.append((f"{len(rest)} other rooms", pooled))
    labels = [f"{name} ({sum(row)})" for name, row in rows]
    shares = [[round(100 * c / max(sum(row), 1), 2) for c in row] for _, row in rows]
    return {"labels": labels, "buckets": [label for _, label in BUCKETS] + [NO_ANSWER],
            "counts": [row for _, row in rows], "shares": shares}


def _graph(questions: Sequence[Question], edges: Sequence[HelpEdge], ids: Mapping[str, str],
           label: Mapping[str, str], max_nodes: int, max_labels: int) -> tuple[dict[str, object], str]:
    """The help network among the `max_nodes` members most involved in help, and a note on what was left out."""
    weight: Counter[tuple[str, str]] = Counter((e.helper, e.asker) for e in edges if e.helper != e.asker)
    given: Counter[str] = Counter()
    received: Counter[str] = Counter()
    helped: dict[str, set[str]] = defaultdict(set)
    helpers: dict[str, set[str]] = defaultdict(set)
    for (h, a), w in weight.items():
        given[h] += w
        received[a] += w
        helped[h].add(a)
        helpers[a].add(h)
    asked = Counter(q.author for q in questions if q.state != QState.WITHDRAWN)
    members = set(given) | set(received)
    ranked = sorted(members, key=lambda m: (-(given[m] + received[m]), -given[m], ids[m]))
    top = set(ranked[:max_nodes])
    pairs = [(h, a, w) for (h, a), w in weight.items() if h in top and a in top]
    # Members whose every partner fell outside the top would float alone: leave them out too.
    kept = {h for h, _, _ in pairs} | {a for _, a, _ in pairs}
    shown_labels = set(sorted(kept, key=lambda m: (-given[m], ids[m]))[:max_labels])
    nodes = []
    for m in ranked[:max_nodes]:
        if m not in kept:
            continue
        role = "both" if given[m] and received[m] else ("helper" if given[m] else "asker")
        nodes.append({"id": ids[m], "name": label[m], "label": label[m] if m in shown_labels and given[m] else "",
                      "given": given[m], "helped": len(helped[m]), "helpers": len(helpers[m]), "asked": asked[m],
                      "role": role})
    out_edges = [{"s": ids[h], "t": ids[a], "w": w, "r": (a, h) in weight}
                 for h, a, w in sorted(pairs, key=lambda p: (ids[p[0]], ids[p[1]]))]
    note = ""
    if len(members) > len(kept):
        note = (f"Showing {len(kept)} of the {len(members)} members in the network: the most involved in help "
                f"(given or received) and linked among themselves, with {len(pairs)} of the {len(weight)} "
                "helper→asker pairs.")
    return ({"nodes": nodes, "edges": out_edges, "maxGiven": max(given.values(), default=1),
             "maxW": max((w for _, _, w in pairs), default=1)}, note)


# -- HTML ------------------------------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _json_for_script(data: object) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _script(name: str) -> str:
    code = _SOURCE_MAP.sub("", _asset(name))
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE)


def _markdown(md: str) -> str:
    """The small Markdown subset of `METRIC_DEFINITIONS` (paragraphs, "- " items, **bold**, `code`) as HTML."""
    blocks: list[str] = []
    items: list[str] = []
    para: list[str] = []

    def inline(text: str) -> str:
        text = _e(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", text)

    def close_para() -> None:
        if para:
            blocks.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()

    for line in md.splitlines():
        if line.startswith("- "):
            close_para()
            items.append(line[2:])
        elif line.startswith("  ") and items:
            items[-1] += " " + line.strip()
        elif not line.strip():
            close_para()
        else:
            para.append(line.strip())
    close_para()
    if items:
        blocks.append('<ul class="definitions">' + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
    return "\n".join(blocks)


_CARDS: tuple[tuple[str, str, str], ...] = (
    ("questions", "questions", "count"),
    ("answer_rate", "answered", "share"),
    ("median_first_answer", "first answer, median", "duration"),
    ("p90_first_answer", "first answer, p90", "duration"),
    ("resolved_share", "resolved", "share"),
    ("reciprocity", "reciprocated help pairs", "share"),
    ("both_share", "members who asked and helped", "share"),
    ("top_share", "answers by the top 10% of answerers", "share"),
    ("half_helpers", "answerers giving half the answers", "count"),
    ("newcomers_answered_share", "newcomers whose first question was answered", "share"),
    ("members", "active members", "count"),
)


def _value(h: Health, attr: str, kind: str) -> str:
    v = getattr(h, attr)
    if kind == "share":
        return share(v)
    if kind == "duration":
        return duration(v)
    return UNDEFINED if v is None else f"{v:,}"


def _cards(current: Health, previous: Health | None) -> str:
    out = []
    for attr, label, kind in _CARDS:
        trend = ""
        if previous is not None:
            mark = arrow(getattr(current, attr), getattr(previous, attr), kind)
            if mark:
                cls = {"↑": "up", "↓": "down"}.get(mark, "")
                # Up is good except for waiting times and concentration of the load on a few people.
                if attr in ("median_first_answer", "p90_first_answer", "top_share") and cls:
                    cls = "down" if cls == "up" else "up"
                if attr in ("questions", "members", "half_helpers"):
                    cls = ""
                trend = (f'<div class="trend"><span class="{cls}">{mark}</span> vs '
                         f"{_e(_value(previous, attr, kind))}</div>")
        extra = " members" if attr == "members" else ""
        out.append(f'<div class="card{extra}"><div class="label">{_e(label)}</div>'
                   f'<div class="value">{_e(_value(current, attr, kind))}</div>{trend}</div>')
    return '<div class="cards">' + "".join(out) + "</div>"


def _room_table(rooms: Mapping[str, Health], limit: int) -> str:
    ranked = sorted(rooms.values(), key=lambda h: (-h.questions, h.room or ""))[:limit]
    rows = "".join(
        f"<tr><td>{_e(h.room)}</td><td class='num'>{h.questions:,}</td><td class='num'>{share(h.answer_rate)}</td>"
        f"<td class='num'>{duration(h.median_first_answer)}</td><td class='num'>{duration(h.p90_first_answer)}</td>"
        f"<td class='num'>{share(h.resolved_share)}</td><td class='num'>{share(h.reciprocity)}</td>"
        f"<td class='num'>{h.members:,}</td></tr>"
        for h in ranked
    )
    more = f"<p class='muted small'>The {limit} busiest of {len(rooms)} rooms.</p>" if len(rooms) > limit else ""
    return ("<div class='table-wrap'><table><thead><tr><th>room</th><th class='num'>questions</th>"
            "<th class='num'>answered</th><th class='num'>median first answer</th><th class='num'>p90</th>"
            "<th class='num'>resolved</th><th class='num'>reciprocity</th><th class='num'>active members</th>"
            f"</tr></thead><tbody>{rows}</tbody></table></div>{more}")


def _unanswered(community: str, questions: Sequence[Question], label: Mapping[str, str], now: datetime,
                limit: int) -> str:
    waiting = [q for q in questions if q.first_answer_ts is None and q.state in (QState.OPEN, QState.STALE)]
    if not waiting:
        return "<p>Every question got an answer.</p>"
    waiting.sort(key=lambda q: (q.asked_ts, q.id), reverse=True)
    rows = []
    for q in waiting[:limit]:
        url = question_url(community, q)
        link = f"<a href='{_e(url)}' rel='noreferrer noopener' target='_blank'>open</a>" if url else UNDEFINED
        age = duration((now - q.asked_ts).total_seconds())
        rows.append(f"<tr><td>{_e(q.asked_ts.strftime('%Y-%m-%d %H:%M'))}</td><td>{_e(q.room)}</td>"
                    f"<td>{_e(label.get(q.author, q.author))}</td><td>{_e(q.state.value)}</td>"
                    f"<td class='num'>{_e(age)}</td><td>{link}</td></tr>")
    more = (f"<p class='muted small'>The {limit} most recent of {len(waiting):,} questions without an answer.</p>"
            if len(waiting) > limit else f"<p class='muted small'>{len(waiting):,} questions.</p>")
    return ("<div class='table-wrap scroll'><table><thead><tr><th>asked (UTC)</th><th>room</th><th>asked by</th>"
            "<th>state</th><th class='num'>waiting for</th><th>link</th></tr></thead><tbody>"
            + "".join(rows) + f"</tbody></table></div>{more}")


def _community(index: int, community: str, questions: list[Question], edges: list[HelpEdge],
               options: ReportOptions) -> tuple[str, dict[str, object]]:
    key = f"c{index}"
    members = {q.author for q in questions} | {e.helper for e in edges} | {e.asker for e in edges}
    pseudo = Pseudonyms(options.salt, community, members)
    ids = {m: pseudo(m) for m in members}
    if options.show_names:
        label = {m: options.names.get((community, m)) or pseudo(m) for m in members}
        # Two members may share a display name: tell them apart.
        seen = Counter(label.values())
        label = {m: (f"{v} ({pseudo(m)})" if seen[v] > 1 else v) for m, v in label.items()}
    else:
        label = ids

    weeks = health.weekly(questions, edges)
    times = [q.asked_ts for q in questions] + [e.ts for e in edges]
    start, end = min(times), max(times) + timedelta(microseconds=1)
    overall = health.measure(questions, edges, start, end)
    rooms = health.by_room(questions, edges, start, end)
    graph, graph_note = _graph(questions, edges, ids, label, options.max_nodes, options.max_labels)
    # The latest complete week (the current one is still filling up), else the only one there is.
    complete = [w for w in weeks if w.end <= (options.as_of or end)]
    latest = complete[-1] if complete else (weeks[-1] if weeks else overall)
    previous = next((w for w in reversed(weeks) if w.end <= latest.start), None)

    data = {"key": key, "weeks": _weeks(weeks), "rooms": _rooms(questions, options.max_rooms), "graph": graph}
    if not options.show_names:
        names_note = "Members are shown as pseudonyms (salted hashes), not names."
    elif any(m in members for c, m in options.names if c == community):
        names_note = "Members are shown by display name where the events gave one, else by pseudonym."
    else:
        names_note = "No display names are known (lien's database keeps none): members are shown as pseudonyms."
    charts = "".join(
        f"<div class='panel{' wide' if slug == 'members' else ''}'><h3>{_e(title)}</h3>"
        f"<p class='muted small'>{_e(hint)}</p>"
        f"<div class='chart'><canvas id='{key}-{slug}' role='img' aria-label='{_e(title)}'></canvas></div></div>"
        for slug, title, hint in (
            ("questions", "Questions and answers", "Questions asked each week; the share answered and resolved."),
            ("latency", "Time to first answer", "Median and 90th percentile (the slowest tenth), log scale."),
            ("reciprocity", "Help going both ways",
             "Helper pairs who helped each other; members who both asked and helped; graph density."),
            ("load", "Who carries the load",
             "Share of answers given by the top 10% of answerers (lower is healthier); people giving half the "
             "answers; newcomers whose first question was answered."),
            ("members", "Active members", "Members who asked or helped that week. Shown last on purpose."),
        )
    )
    week_name = health.week_label(latest.start)
    body = f"""
<section class="community" id="{key}">
  <h2>{_e(community)}</h2>
  <p class="muted">{overall.questions:,} questions and {len(edges):,} help edges from
    {_e(start.strftime('%Y-%m-%d'))} to {_e(end.strftime('%Y-%m-%d'))} in {len(rooms)} rooms.</p>
  <h3>Latest complete week: {_e(week_name)}</h3>
  <p class="muted small">Arrows compare with the week before; green is better, red worse. Recent questions may
    still get answers.</p>
  {_cards(latest, previous)}
  <h3>Whole period</h3>
  {_cards(overall, None)}
  <h2>Weekly trends</h2>
  <div class="grid">{charts}</div>
  <h2>Time to first answer, per room</h2>
  <div class="panel"><p class="muted small">Each bar is a room (questions in brackets): how long its questions
    waited for a first answer, from green (minutes) to red (days); grey is no answer at all.</p>
    <div class="chart rooms" id="{key}-rooms-box"><canvas id="{key}-rooms" role="img"
      aria-label="Time to first answer per room"></canvas></div></div>
  {_room_table(rooms, options.max_rooms)}
  <h2>Help network</h2>
  <div class="panel graph-wrap">
    <p class="muted small">Who helps whom: an arrow goes from the helper to the member helped, thicker for more
      help; <span style="color:#ea580c">orange</span> pairs helped each other. Node size is help given.
      {_e(names_note)} {_e(graph_note)}</p>
    <div class="graph-tools">
      <span class="legend"><span class="dot" style="background:#2563eb"></span>helped</span>
      <span class="legend"><span class="dot" style="background:#0d9488"></span>helped and was helped</span>
      <span class="legend"><span class="dot" style="background:#94a3b8"></span>was helped</span>
      <span class="legend"><span class="bar" style="background:#ea580c"></span>reciprocal</span>
      <button type="button" id="{key}-graph-fit">Fit</button>
    </div>
    {"<div class='graph' id='" + key + "-graph'></div>" if graph["nodes"] else "<p>No help edges yet.</p>"}
    <p class="info" id="{key}-graph-info" data-hint="Tap a member to see who they helped.">Tap a member to see who
      they helped.</p>
  </div>
  <h2>Questions that never got an answer</h2>
  <p class="muted small">Still open or stale, newest first; links open the question where the platform has
    them.</p>
  {_unanswered(community, questions, label, options.as_of or end, options.max_unanswered)}
</section>"""
    return body, data


def build_report(questions: Sequence[Question], edges: Sequence[HelpEdge], options: ReportOptions) -> str:
    """The report page: one section per community, oldest data first; a note when there is nothing to show."""
    by_q: dict[str, list[Question]] = defaultdict(list)
    by_e: dict[str, list[HelpEdge]] = defaultdict(list)
    for q in questions:
        by_q[q.community].append(q)
    for e in edges:
        by_e[e.community].append(e)
    communities = sorted(by_q.keys() | by_e.keys(), key=lambda c: (-len(by_q.get(c, ())), c))
    sections: list[str] = []
    data: list[dict[str, object]] = []
    for i, c in enumerate(communities):
        body, d = _community(i, c, by_q.get(c, []), by_e.get(c, []), options)
        sections.append(body)
        data.append(d)
    if not sections:
        sections.append("<p>No questions or help edges in this history: nothing to report yet.</p>")
    toc = ""
    if len(communities) > 1:
        toc = "<p>Communities: " + ", ".join(f"<a href='#c{i}'>{_e(c)}</a>" for i, c in enumerate(communities)) + "</p>"
    credits = ", ".join(f"{name} {version} (MIT licence)" for _, name, version, _ in LIBRARIES)
    scripts = "\n".join(f"<script>{_script(file)}</script>" for file, *_ in LIBRARIES)
    generated = options.generated.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="referrer" content="no-referrer">
<meta name="generator" content="lien report">
<title>lien: community health report</title>
<style>{_asset("report.css")}</style>
</head>
<body>
<main>
<header class="page">
  <h1>Community health report</h1>
  <p class="muted">Does the community help each other? Built by lien from question states and help links only,
    never message text. Generated {_e(generated)}{(" from " + _e(options.source)) if options.source else ""}.</p>
  {toc}
</header>
{"".join(sections)}
<h2>How these figures are computed</h2>
<details><summary>Definitions of every metric</summary>{_markdown(health.METRIC_DEFINITIONS)}</details>
<footer>Made with lien. Drawn with {_e(credits)}; their licences are in lien's <code>adapters/report_assets/</code>.
This page works offline and loads nothing from the network.</footer>
</main>
<script type="application/json" id="lien-data">{_json_for_script({"communities": data})}</script>
{scripts}
<script>{_script("report.js")}</script>
</body>
</html>
"""


def write_report(path: Path, questions: Sequence[Question], edges: Sequence[HelpEdge], options: ReportOptions) -> int:
    """Write the report page to `path`; returns its size in bytes."""
    page = build_report(questions, edges, options)
    data = page.encode("utf-8")
    path.write_bytes(data)
    return len(data)

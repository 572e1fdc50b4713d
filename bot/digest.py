"""The texts of community health: `!lien health` with trend arrows, and the weekly digest. Pure, EN and FR.

Neither text ever mentions anyone: no `<@...>` token is written, member names appear only for members who allowed
it (`MemberPrefs.named_thanks`), and every name goes through `render.safe`. Questions appear as `<link:ROOM/ID>`
tokens, which adapters render as links.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot import render
from bot.health import WEEK, Health, week_label, week_start
from bot.model import MemberPrefs, Question

__all__ = ["arrow", "digest_text", "digest_week", "duration", "health_text", "next_digest_at", "share"]

#: Shown for a figure that cannot be computed (no questions, no edges, fewer than two members).
UNDEFINED = "—"
UP, DOWN, SAME = "↑", "↓", "→"
#: Changes smaller than these show as "→": 1 percentage point for shares, 5% (relative) for durations.
SHARE_TOLERANCE = 0.01
DURATION_TOLERANCE = 0.05
#: At most this many questions and names are listed in a digest.
MAX_OPEN, MAX_STALE, MAX_NAMES = 10, 5, 10

_T: dict[str, dict[str, str]] = {
    "health_title": {"en": "Community health, last 7 days (arrows compare with the 7 days before)",
                     "fr": "Santé de la communauté, 7 derniers jours (les flèches comparent aux 7 jours d'avant)"},
    "health_title_room": {"en": "Health of room {room}, last 7 days (arrows compare with the 7 days before)",
                          "fr": "Santé du salon {room}, 7 derniers jours (les flèches comparent aux 7 jours "
                                "d'avant)"},
    "questions": {"en": "Questions: {n}{a} · answered {rate}{ra} · resolved {res}{rsa}",
                  "fr": "Questions\u00a0: {n}{a} · avec réponse {rate}{ra} · résolues {res}{rsa}"},
    "first_answer": {"en": "First answer: median {median}{ma} · p90 {p90}{pa}",
                     "fr": "Première réponse\u00a0: médiane {median}{ma} · p90 {p90}{pa}"},
    "reciprocity": {"en": "Reciprocity: {rec}{ra} of helper pairs helped each other · {both}{ba} of members both "
                          "asked and helped",
                    "fr": "Réciprocité\u00a0: {rec}{ra} des paires d'entraide se sont aidées dans les deux sens · "
                          "{both}{ba} des membres ont demandé et aidé"},
    "concentration": {"en": "Answers: {answers}{aa}; the top 10% of answerers gave {top}{ta}; half came from {half} "
                            "{people}",
                      "fr": "Réponses\u00a0: {answers}{aa}\u00a0; les 10\u00a0% d'aidants les plus actifs en ont donné "
                            "{top}{ta}\u00a0; la moitié vient de {half} {people}"},
    "person": {"en": "person", "fr": "personne"},
    "people": {"en": "people", "fr": "personnes"},
    "newcomers": {"en": "Newcomers whose first question got an answer: {k} of {n}{a}",
                  "fr": "Nouveaux venus dont la première question a eu une réponse\u00a0: {k} sur {n}{a}"},
    "members": {"en": "Active members: {n}{a}", "fr": "Membres actifs\u00a0: {n}{a}"},
    "digest_title": {"en": "Weekly digest, {week} ({start} to {end})",
                     "fr": "Bilan de la semaine {week} (du {start} au {end})"},
    "digest_figures": {"en": "{n}, {rate} answered, {res} resolved; first answer in {median} (median), "
                             "{p90} for the slowest tenth.",
                       "fr": "{n}, {rate} avec réponse, {res} résolues\u00a0; première réponse en {median} "
                             "(médiane), {p90} pour le dixième le plus lent."},
    "digest_reciprocity": {"en": "Help went both ways in {rec} of helper pairs; {both} of active members both asked "
                                 "and helped; {newcomers}. {members} active members.",
                           "fr": "L'entraide est allée dans les deux sens pour {rec} des paires\u00a0; {both} des "
                                 "membres actifs ont demandé et aidé\u00a0; {newcomers}. {members} membres actifs."},
    "digest_newcomers": {"en": "{k} of {n} newcomers got an answer to their first question",
                         "fr": "{k} nouveaux venus sur {n} ont eu une réponse à leur première question"},
    "digest_no_newcomers": {"en": "no newcomer asked a question", "fr": "aucun nouveau venu n'a posé de question"},
    "digest_quiet": {"en": "A quiet week: no questions were asked.",
                     "fr": "Une semaine calme\u00a0: aucune question n'a été posée."},
    "open": {"en": "Still waiting for an answer ({n}):", "fr": "Toujours en attente d'une réponse ({n})\u00a0:"},
    "stale": {"en": "Waiting for a long time ({n}), a partial answer helps too:",
              "fr": "En attente depuis longtemps ({n}), une réponse partielle aide aussi\u00a0:"},
    "more": {"en": "…and {n} more: `{prefix} unanswered` lists them.",
             "fr": "…et {n} de plus\u00a0: `{prefix} unanswered` les liste."},
    "none_open": {"en": "No question is waiting for an answer. Nice work, everyone.",
                  "fr": "Aucune question n'attend de réponse. Beau travail à tous."},
    "thanks_named": {"en": "Thank you {names}, and everyone who answered a question this week.",
                     "fr": "Merci à {names}, et à toutes celles et ceux qui ont répondu cette semaine."},
    "thanks_anonymous": {"en": "Thank you to the {n} {people} who answered a question this week.",
                         "fr": "Merci aux {n} {people} qui ont répondu à une question cette semaine."},
    "and": {"en": "and", "fr": "et"},
}


def _t(key: str, lang: str, **values: object) -> str:
    forms = _T[key]
    return forms.get(lang, forms["en"]).format(**values)


def _fr(lang: str) -> bool:
    return lang == "fr"


def share(value: float | None, lang: str = "en") -> str:
    """A share as a whole percentage ("81%", "81 %" in French), or "—"."""
    if value is None:
        return UNDEFINED
    pct = round(100 * value)
    return f"{pct}\u00a0%" if _fr(lang) else f"{pct}%"


def duration(seconds: float | None, lang: str = "en") -> str:
    """A duration in the largest readable unit: "<1 min", "14 min", "2.5 h", "3.1 d" ("3,1 j" in French)."""
    if seconds is None:
        return UNDEFINED
    if seconds < 60:
        return "<1\u00a0min" if _fr(lang) else "<1 min"
    if seconds < 3600:
        value, unit = f"{int(seconds // 60)}", "min"
    elif seconds < 2 * 86400:
        value, unit = f"{seconds / 3600:.1f}", "h"
    else:
        value, unit = f"{seconds / 86400:.1f}", "j" if _fr(lang) else "d"
    if _fr(lang):
        return f"{value.replace('.', ',')}\u00a0{unit}"
    return f"{value} {unit}"


def arrow(current: float | None, previous: float | None, kind: str = "count") -> str:
    """↑, ↓ or → from `previous` to `current`; "" when either is undefined.

    `kind` "share" treats changes under `SHARE_TOLERANCE` as steady, "duration" relative changes under
    `DURATION_TOLERANCE`, "count" any change.
    """
    if current is None or previous is None:
        return ""
    delta = current - previous
    if kind == "share":
        steady = abs(delta) < SHARE_TOLERANCE
    elif kind == "duration":
        steady = abs(delta) < DURATION_TOLERANCE * max(abs(previous), 1.0)
    else:
        steady = delta == 0
    if steady:
        return SAME
    return UP if delta > 0 else DOWN


def _a(current: float | None, previous: Health | None, attr: str, kind: str) -> str:
    if previous is None:
        return ""
    mark = arrow(current, getattr(previous, attr), kind)
    return f" {mark}" if mark else ""


def health_text(current: Health, previous: Health | None, lang: str) -> str:
    """The `!lien health` reply: the last window's figures, each with its trend against `previous`."""
    c, p = current, previous
    lines = [
        _t("health_title_room", lang, room=render.safe(c.room, 60)) if c.room else _t("health_title", lang),
        _t("questions", lang, n=c.questions, a=_a(c.questions, p, "questions", "count"),
           rate=share(c.answer_rate, lang), ra=_a(c.answer_rate, p, "answer_rate", "share"),
           res=share(c.resolved_share, lang), rsa=_a(c.resolved_share, p, "resolved_share", "share")),
        _t("first_answer", lang, median=duration(c.median_first_answer, lang),
           ma=_a(c.median_first_answer, p, "median_first_answer", "duration"),
           p90=duration(c.p90_first_answer, lang), pa=_a(c.p90_first_answer, p, "p90_first_answer", "duration")),
        _t("reciprocity", lang, rec=share(c.reciprocity, lang), ra=_a(c.reciprocity, p, "reciprocity", "share"),
           both=share(c.both_share, lang), ba=_a(c.both_share, p, "both_share", "share")),
        _t("concentration", lang, answers=c.answers, aa=_a(c.answers, p, "answers", "count"),
           top=share(c.top_share, lang), ta=_a(c.top_share, p, "top_share", "share"),
           half=UNDEFINED if c.half_helpers is None else c.half_helpers,
           people=_t("person" if c.half_helpers == 1 else "people", lang)),
        _t("newcomers", lang, k=c.newcomers_answered, n=c.newcomers,
           a=f" ({share(c.newcomers_answered_share, lang)})" if c.newcomers else ""),
        _t("members", lang, n=c.members, a=_a(c.members, p, "members", "count")),
    ]
    return "\n".join([lines[0], *(f"• {line}" for line in lines[1:])])


def _date(ts: datetime, lang: str) -> str:
    return ts.strftime("%d/%m") if _fr(lang) else ts.strftime("%b %d").replace(" 0", " ")


def _question_items(questions: Sequence[Question], limit: int) -> list[str]:
    ordered = sorted(questions, key=lambda q: (q.asked_ts, q.id))
    return [f"- {render.question_link(q.room, q.id)}" for q in ordered[:limit]]


def _display(name: str) -> str:
    """A display name that can neither mention nor link: no leading at sign, no `<...>` token."""
    return render.safe(name.replace("<", "‹"), 40).strip().lstrip("@\uff20").strip()


def _names(names: list[str], lang: str) -> str:
    if len(names) == 1:
        return names[0]
    return f"{', '.join(names[:-1])} {_t('and', lang)} {names[-1]}"


def digest_text(week_metrics: Health, open_questions: Sequence[Question], stale_questions: Sequence[Question],
                thanked_opt_in: Sequence[tuple[MemberPrefs, str]], lang: str, *, prefix: str = "!lien") -> str:
    """The weekly digest: the week's figures, open and stale questions as link tokens, and thanks.

    `thanked_opt_in` holds (preferences, display name) of the week's helpers, most helpful first; only those whose
    preferences allow `named_thanks` (and who did not opt out) are named. The text never mentions anyone.
    """
    m = week_metrics
    last_day = m.end - timedelta(seconds=1)
    parts = [_t("digest_title", lang, week=week_label(m.start), start=_date(m.start, lang),
                end=_date(last_day, lang))]
    if m.questions:
        counted = f"{m.questions} question{'s' if m.questions > 1 else ''}"
        parts.append(_t("digest_figures", lang, n=counted, rate=share(m.answer_rate, lang),
                        res=share(m.resolved_share, lang), median=duration(m.median_first_answer, lang),
                        p90=duration(m.p90_first_answer, lang)))
        newcomers = (_t("digest_newcomers", lang, k=m.newcomers_answered, n=m.newcomers) if m.newcomers
                     else _t("digest_no_newcomers", lang))
        parts.append(_t("digest_reciprocity", lang, rec=share(m.reciprocity, lang), both=share(m.both_share, lang),
                        newcomers=newcomers, members=m.members))
    else:
        parts.append(_t("digest_quiet", lang))

    waiting: list[str] = []
    if open_questions:
        waiting.append(_t("open", lang, n=len(open_questions)))
        waiting.extend(_question_items(open_questions, MAX_OPEN))
        if len(open_questions) > MAX_OPEN:
            waiting.append(_t("more", lang, n=len(open_questions) - MAX_OPEN, prefix=prefix))
    if stale_questions:
        waiting.append(_t("stale", lang, n=len(stale_questions)))
        waiting.extend(_question_items(stale_questions, MAX_STALE))
        if len(stale_questions) > MAX_STALE:
            waiting.append(_t("more", lang, n=len(stale_questions) - MAX_STALE, prefix=prefix))
    parts.append("\n".join(waiting) if waiting else _t("none_open", lang))

    names = [_display(name) for prefs, name in thanked_opt_in if prefs.named_thanks and not prefs.optout]
    names = list(dict.fromkeys(n for n in names if n))[:MAX_NAMES]
    if names:
        parts.append(_t("thanks_named", lang, names=_names(names, lang)))
    elif m.answerers:
        parts.append(_t("thanks_anonymous", lang, n=m.answerers,
                        people=_t("person" if m.answerers == 1 else "people", lang)))
    return "\n\n".join(parts)


def digest_week(now: datetime) -> tuple[datetime, datetime]:
    """The last complete ISO week before `now`: Monday 00:00 UTC to the next Monday, the digest's window."""
    end = week_start(now)
    return end - WEEK, end


def next_digest_at(now: datetime, timezone: str = "UTC", hour: int = 9) -> datetime:
    """The first Monday `hour`:00 in `timezone` strictly after `now`, in UTC: when the weekly digest is due."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    day = local.date() + timedelta(days=(7 - local.weekday()) % 7)
    due = datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(UTC)
    if due <= now:  # it is Monday, past the hour: next week
        day += timedelta(days=7)
        due = datetime(day.year, day.month, day.day, hour, tzinfo=zone).astimezone(UTC)
    return due

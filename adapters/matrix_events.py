"""Pure translation between Matrix events and lien's core values; no network, no nio types required.

Inbound, `to_event` turns one raw client-server event (a dict, or a nio event carrying `.source`) into a
`bot.events` value or None. Outbound, `to_content` turns an action into the content of a Matrix event, and
`event_type` says which event type carries it. Every Matrix quirk lien knows about lives here: reply fallbacks,
threads and their fallback replies, edits, pills, `m.mentions`, room v12 creators, backlog from before lien joined,
and mutes by power level (Matrix has no timeout).
"""

from __future__ import annotations

import html
import re
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from bot.actions import Action, Dm, Post, React, Refuse, Reply, Report
from bot.errors import UnsupportedAction
from bot.events import Command, Delete, Edit, Event, MemberJoin, MemberLeave, Message, Reaction

PLATFORM = "matrix"
#: Custom content field carrying an action's idempotency key, so a restart can find lien's earlier message.
KEY_FIELD = "org.lien.key"
HTML_FORMAT = "org.matrix.custom.html"
#: Room versions whose creators hold ordinary power levels; later versions (12+) give creators unlimited power.
LEGACY_ROOM_VERSIONS = frozenset(str(v) for v in range(1, 12))
#: A Command needs at least this power level, and at least the room's `state_default`.
ADMIN_FLOOR = 50

_REPLY_BLOCK = re.compile(r"<mx-reply>.*?</mx-reply>", re.DOTALL | re.IGNORECASE)
_PILL = re.compile(
    r"""href\s*=\s*["'](?:https://matrix\.to/#/((?:@|%40)[^"'?/]+)|matrix:u/([^"'?/]+))""", re.IGNORECASE
)
# Legacy push rules notify the whole room on the word "@room" in the body, whatever `m.mentions` says.
_ROOM_PING = re.compile(r"@(room)\b", re.IGNORECASE)
_WORD_JOINER = "\u2060"
#: lien's neutral text tokens (see bot.render): a member mention and a link to a question.
_MENTION_TOKEN = re.compile(r"<@([^>\s]+)>")
_LINK_TOKEN = re.compile(r"<link:(?P<room>[^/>\s]+)/(?P<event>[^>\s]+)>")
# Characters kept as they are in matrix.to links; anything else (a `/` in an old event id) is percent-encoded.
_ID_SAFE = "!$@:._~+=,-"


def _source(raw: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    source = getattr(raw, "source", None)
    if isinstance(source, Mapping):
        return source
    raise TypeError(f"expected a raw event dict or an object with .source, got {type(raw).__name__}")


def _ts(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def strip_reply_fallback(body: str) -> str:
    """Remove the quoted `> <@user> ...` lines (and the blank line after them) that start a reply's body."""
    lines = body.split("\n")
    if not lines or not (lines[0].startswith("> <") or lines[0].startswith("> * <")):
        return body
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


def strip_reply_block(formatted_body: str) -> str:
    """Remove the `<mx-reply>` block that quotes the replied-to message in a formatted body."""
    return _REPLY_BLOCK.sub("", formatted_body)


def pill_mentions(formatted_body: str) -> list[str]:
    """User ids linked as pills (`https://matrix.to/#/@u:s` or `matrix:u/u:s`), outside any reply block."""
    found: list[str] = []
    for match in _PILL.finditer(strip_reply_block(formatted_body)):
        uid = unquote(match.group(1) or match.group(2))
        if not uid.startswith("@"):
            uid = "@" + uid
        if ":" in uid:
            found.append(uid)
    return found


def power_level(user_id: str, power_levels: Mapping[str, Any] | None, creators: Collection[str] = ()) -> float:
    """The user's power level in a room; creators of v12+ rooms (`creators`) rank above any number."""
    if user_id in creators:
        return float("inf")
    if not power_levels:
        return 0
    users = _dict(power_levels.get("users"))
    level = users.get(user_id, power_levels.get("users_default", 0))
    try:
        return int(level)
    except (TypeError, ValueError):
        return 0


def is_admin(user_id: str, power_levels: Mapping[str, Any] | None, creators: Collection[str] = ()) -> bool:
    """True when the user's power level is at least max(state_default, 50): a room moderator or admin."""
    if user_id in creators:
        return True
    if not power_levels:
        return False
    try:
        state_default = int(power_levels.get("state_default", ADMIN_FLOOR))
    except (TypeError, ValueError):
        state_default = ADMIN_FLOOR
    return power_level(user_id, power_levels) >= max(state_default, ADMIN_FLOOR)


def creators_of(create_event: Mapping[str, Any] | None) -> frozenset[str]:
    """Users with unlimited power from an `m.room.create` event (room v12+: sender and additional_creators)."""
    if not create_event:
        return frozenset()
    content = _dict(create_event.get("content"))
    version = str(content.get("room_version", "1"))
    if version in LEGACY_ROOM_VERSIONS:
        return frozenset()
    extra = content.get("additional_creators")
    users = {u for u in extra if isinstance(u, str)} if isinstance(extra, list) else set()
    sender = _str(create_event.get("sender"))
    if sender:
        users.add(sender)
    return frozenset(users)


# --- mutes: a timeout as a temporary power level -----------------------------------------------------------------
# Matrix has no timeout: moderation bots mute a member by lowering their power level below what sending needs, and
# restore it later. These functions decide; the adapter reads the latest `m.room.power_levels` and writes.

#: `state_default` when the power levels do not set it (the spec's default once an `m.room.power_levels` exists).
STATE_DEFAULT = 50


def _level(value: Any, default: int) -> int:
    if value is None or isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _explicit_level(user_id: str, power_levels: Mapping[str, Any] | None) -> int | None:
    """The user's own entry in `users`, or None when it is absent (the user then has `users_default`)."""
    users = _dict(_dict(power_levels).get("users"))
    return _level(users[user_id], 0) if user_id in users else None


def state_event_level(power_levels: Mapping[str, Any] | None, event_type: str) -> int:
    """The level needed to send the state event `event_type`: `events[type]`, else `state_default` (50)."""
    pl = _dict(power_levels)
    return _level(_dict(pl.get("events")).get(event_type),
                  _level(pl.get("state_default"), STATE_DEFAULT))


def mute_level(power_levels: Mapping[str, Any] | None) -> int:
    """The level lien gives a muted member: one below both `events_default` and what `m.room.message` needs."""
    pl = _dict(power_levels)
    events_default = _level(pl.get("events_default"), 0)
    message = _level(_dict(pl.get("events")).get("m.room.message"), events_default)
    return min(events_default, message) - 1


def power_change_refusal(actor: str, member: str, power_levels: Mapping[str, Any] | None,
                         creators: Collection[str] = (), *, new_level: int | None = None) -> str | None:
    """Why `actor` may not change `member`'s power level (to `new_level`), or None when the homeserver allows it.

    The spec's authorization rules: the actor needs the level of `m.room.power_levels` events, a level above the
    member's current one, and at least the level it gives.
    """
    if actor == member:
        return "lien does not change its own power level"
    mine = power_level(actor, power_levels, creators)
    needed = state_event_level(power_levels, "m.room.power_levels")
    if mine < needed:
        return f"lien lacks power level {needed} to change power levels (it has {_shown(mine)})"
    theirs = power_level(member, power_levels, creators)
    if mine <= theirs:
        return f"lien's power level {_shown(mine)} is not above {member}'s ({_shown(theirs)})"
    if new_level is not None and new_level > mine:
        return f"lien's power level {_shown(mine)} is below the level {new_level} to give back to {member}"
    return None


def _shown(level: float) -> str:
    return "creator" if level == float("inf") else str(int(level))


@dataclass(frozen=True, slots=True)
class MutePlan:
    """What muting a member takes: `content` to write (None: nothing to write), the mute to remember.

    `level` is the member's level while muted, `previous` their own `users` entry before lien's first mute (None:
    there was none, so restoring removes the entry). `level` None: the member already cannot send; nothing to undo.
    """

    content: dict[str, Any] | None
    level: int | None
    previous: int | None


def plan_mute(power_levels: Mapping[str, Any] | None, member: str, *, creators: Collection[str] = (),
              earlier: tuple[int, int | None] | None = None) -> MutePlan:
    """How to mute `member` given the room's latest power levels (whether lien may: `power_change_refusal`).

    `earlier` is lien's running mute of the member, `(level, previous)`: while the member still has that level it
    stays in force with its original `previous`, so extending a mute never makes the mute level the one restored.
    Only `users[member]` changes; every other key and user is written back as it was.
    """
    explicit = _explicit_level(member, power_levels)
    if earlier is not None and explicit == earlier[0]:
        return MutePlan(content=None, level=earlier[0], previous=earlier[1])
    target = mute_level(power_levels)
    if power_level(member, power_levels, creators) <= target:
        return MutePlan(content=None, level=None, previous=None)  # already cannot send: raising them would unmute
    return MutePlan(content=_with_user(power_levels, member, target), level=target, previous=explicit)


def plan_unmute(power_levels: Mapping[str, Any] | None, member: str, *, level: int,
                previous: int | None) -> dict[str, Any] | None:
    """The power levels with `member` back at `previous` (entry removed when None); None leaves them as they are.

    None when the member's level is no longer the mute `level` lien set: a moderator changed it meanwhile, and
    their decision wins.
    """
    if _explicit_level(member, power_levels) != level:
        return None
    return _with_user(power_levels, member, previous)


def _with_user(power_levels: Mapping[str, Any] | None, member: str, level: int | None) -> dict[str, Any]:
    content = dict(_dict(power_levels))
    users = dict(_dict(content.get("users")))
    if level is None:
        users.pop(member, None)
    else:
        users[member] = level
    content["users"] = users
    return content


def thread_root(event: Mapping[str, Any] | None) -> str | None:
    """The thread root id of an event that belongs to an `m.thread`, else None (a root itself gives None)."""
    if not event:
        return None
    rel = _dict(_dict(event.get("content")).get("m.relates_to"))
    if rel.get("rel_type") == "m.thread":
        return _str(rel.get("event_id"))
    return None


def inviter_of(invite_state: Collection[Mapping[str, Any] | Any], own_user_id: str) -> str | None:
    """Who invited `own_user_id`, from a room's stripped invite state (raw dicts or nio invite events)."""
    for item in invite_state:
        if isinstance(item, Mapping):
            etype, key, sender = item.get("type"), item.get("state_key"), item.get("sender")
            membership = _dict(item.get("content")).get("membership")
        else:  # nio's invite events keep their fields as attributes (and drop `content` from .source)
            etype = "m.room.member" if hasattr(item, "membership") else None
            key, sender = getattr(item, "state_key", None), getattr(item, "sender", None)
            membership = getattr(item, "membership", None)
        if etype == "m.room.member" and key == own_user_id and membership == "invite":
            return _str(sender)
    return None


def server_of(user_id: str) -> str:
    """The server name part of a Matrix user id (`@u:example.org` -> `example.org`)."""
    return user_id.partition(":")[2]


def invite_allowed(inviter: str | None, allowed: Collection[str]) -> bool:
    """True when the inviter is allow-listed by full user id (`@u:server`) or by server name (`server`)."""
    if not inviter:
        return False
    return inviter in allowed or server_of(inviter) in allowed


def _split_command(rest: str) -> list[str]:
    try:
        return shlex.split(rest)
    except ValueError:  # an unbalanced quote: fall back to plain words rather than refuse the command
        return rest.split()


def _command_text(text: str, prefix: str) -> str | None:
    """The text after the prefix when `text` is a command (prefix alone or followed by whitespace)."""
    if not text.startswith(prefix):
        return None
    rest = text[len(prefix):]
    if rest and not rest[0].isspace():
        return None
    return rest.strip()


def to_event(
    room_id: str,
    raw: Mapping[str, Any] | Any,
    *,
    own_user_id: str,
    community: str,
    bot_ids: Collection[str] = (),
    joined_at_ts: int = 0,
    power_levels: Mapping[str, Any] | None = None,
    creators: Collection[str] = (),
    command_prefix: str = "!lien",
    is_dm: bool = False,
) -> Event | None:
    """Translate one Matrix event into a core event; None for what lien ignores.

    `joined_at_ts` (ms): events older than it are backlog from before lien joined or started and give None.
    `power_levels` is the room's `m.room.power_levels` content and `creators` the v12+ creators (see
    `creators_of`); they decide `Command.is_admin`.
    """
    ev = _source(raw)
    etype = ev.get("type")
    sender = _str(ev.get("sender"))
    event_id = _str(ev.get("event_id"))
    ms = ev.get("origin_server_ts")
    if not isinstance(etype, str) or sender is None or event_id is None or not isinstance(ms, int):
        return None
    if ms < joined_at_ts:
        return None
    ts = _ts(ms)
    content = _dict(ev.get("content"))
    is_bot = sender == own_user_id or sender in bot_ids

    if etype == "m.room.member":
        return _membership(ev, content, own_user_id, bot_ids, community, ts)
    if etype == "m.room.redaction":
        redacts = _str(ev.get("redacts")) or _str(content.get("redacts"))
        return Delete(community=community, room=room_id, id=redacts, ts=ts) if redacts else None
    if etype == "m.reaction":
        rel = _dict(content.get("m.relates_to"))
        target, key = _str(rel.get("event_id")), _str(rel.get("key"))
        if rel.get("rel_type") != "m.annotation" or target is None or key is None:
            return None
        return Reaction(community=community, room=room_id, message=target, author=sender, emoji=key, ts=ts)
    if etype != "m.room.message" or not content:
        # Encrypted events (lien has no keys), state changes and unknown types are not for the core.
        return None
    return _message(room_id, event_id, sender, ts, content, is_bot, community, power_levels, creators,
                    command_prefix, is_dm)


def _membership(
    ev: Mapping[str, Any],
    content: Mapping[str, Any],
    own_user_id: str,
    bot_ids: Collection[str],
    community: str,
    ts: datetime,
) -> Event | None:
    target = _str(ev.get("state_key"))
    if target is None or target == own_user_id or target in bot_ids:
        return None
    membership = content.get("membership")
    prev = _dict(_dict(ev.get("unsigned")).get("prev_content")).get("membership")
    if membership == "join" and prev != "join":
        return MemberJoin(community=community, author=target, ts=ts)
    # A leave after an invite or a knock is a declined invitation, not a member leaving.
    if membership in ("leave", "ban") and prev not in ("invite", "knock", "leave", "ban"):
        return MemberLeave(community=community, author=target, ts=ts)
    return None


def _message(
    room_id: str,
    event_id: str,
    sender: str,
    ts: datetime,
    content: Mapping[str, Any],
    is_bot: bool,
    community: str,
    power_levels: Mapping[str, Any] | None,
    creators: Collection[str],
    command_prefix: str,
    is_dm: bool,
) -> Event | None:
    rel = _dict(content.get("m.relates_to"))
    rel_type = rel.get("rel_type")
    if rel_type == "m.replace":
        original = _str(rel.get("event_id"))
        new = _dict(content.get("m.new_content"))
        body = new.get("body")
        if original is None or not isinstance(body, str):
            return None
        return Edit(community=community, room=room_id, id=original, text=strip_reply_fallback(body), ts=ts)

    msgtype = content.get("msgtype")
    body = content.get("body")
    text = body if isinstance(body, str) and msgtype in ("m.text", "m.notice", "m.emote") else ""
    in_reply_to = _str(_dict(rel.get("m.in_reply_to")).get("event_id"))
    if in_reply_to:
        text = strip_reply_fallback(text)

    thread = _str(rel.get("event_id")) if rel_type == "m.thread" else None
    # In a thread, `is_falling_back: true` marks an in_reply_to kept only for clients without thread support.
    reply_to = None if (thread and rel.get("is_falling_back") is True) else in_reply_to

    if not is_bot and msgtype == "m.text":
        rest = _command_text(text, command_prefix)
        if rest is not None:
            words = _split_command(rest)
            return Command(
                community=community, room=room_id, id=event_id, author=sender, ts=ts,
                name=words[0].lower() if words else "", args=tuple(words[1:]),
                is_admin=is_admin(sender, power_levels, creators), is_dm=is_dm,
            )

    mentions: list[str] = []
    declared = _dict(content.get("m.mentions")).get("user_ids")
    if isinstance(declared, list):
        mentions.extend(u for u in declared if isinstance(u, str))
    formatted = content.get("formatted_body")
    if content.get("format") == HTML_FORMAT and isinstance(formatted, str):
        mentions.extend(pill_mentions(formatted))

    return Message(
        community=community, room=room_id, id=event_id, ts=ts, author=sender, text=text,
        reply_to=reply_to, thread=thread, mentions=tuple(dict.fromkeys(mentions)),
        # m.notice is the spec's marker for automated senders (and it never notifies anyone).
        is_bot=is_bot or msgtype == "m.notice", platform=PLATFORM,
    )


def event_type(action: Action) -> str:
    """The Matrix event type that carries `action`."""
    return "m.reaction" if isinstance(action, React) else "m.room.message"


def neutralise_room_ping(text: str) -> str:
    """Break every `@room` with an invisible word joiner so no client or push rule pings the whole room."""
    return _ROOM_PING.sub(lambda m: "@" + _WORD_JOINER + m.group(1), text)


def permalink(room_id: str, event_id: str) -> str:
    """The matrix.to link to an event (what lien's neutral `<link:ROOM/EVENT>` token becomes)."""
    return f"https://matrix.to/#/{quote(room_id, safe=_ID_SAFE)}/{quote(event_id, safe=_ID_SAFE)}"


def _pill(user_id: str) -> str:
    href = html.escape(user_id, quote=True)
    return f'<a href="https://matrix.to/#/{href}">{html.escape(neutralise_room_ping(user_id))}</a>'


def _html_text(text: str) -> str:
    return html.escape(neutralise_room_ping(text), quote=False).replace("\n", "<br>")


def _render(text: str, mentions: tuple[str, ...]) -> tuple[str, str]:
    """Plain body and HTML body: mentions become pills, `<link:ROOM/EVENT>` tokens matrix.to links.

    A mention is written either as lien's neutral token `<@ID>` or as the bare id; mentions written nowhere in
    the text go first, as `@a, @b: text`. A `<@ID>` token of someone not in `mentions` stays inert text.
    """
    wanted = list(dict.fromkeys(mentions))
    text = _MENTION_TOKEN.sub(lambda m: m.group(1) if m.group(1) in wanted else m.group(0), text)
    missing = ", ".join(m for m in wanted if m not in text)
    body = f"{missing}: {text}" if missing and text else (missing or text)
    # Links first, then ids longest first, so `@al:x` never matches inside `@alice:x`.
    alternatives = [_LINK_TOKEN.pattern, *(re.escape(u) for u in sorted(wanted, key=len, reverse=True))]
    plain: list[str] = []
    rich: list[str] = []
    pos = 0
    for match in re.finditer("|".join(alternatives), body):
        plain.append(body[pos:match.start()])
        rich.append(_html_text(body[pos:match.start()]))
        if match.group("room") is not None:
            url = permalink(match.group("room"), match.group("event"))
            plain.append(url)
            rich.append(f'<a href="{html.escape(url, quote=True)}">{html.escape(url, quote=False)}</a>')
        else:
            plain.append(match.group(0))
            rich.append(_pill(match.group(0)))
        pos = match.end()
    plain.append(body[pos:])
    rich.append(_html_text(body[pos:]))
    return neutralise_room_ping("".join(plain)), "".join(rich)


def to_content(action: Action, *, reply_event: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Matrix content for a post, reply, refusal, report, DM or reaction.

    `m.mentions.user_ids` lists exactly `action.mentions` (and never `room`); `reply_event` is the raw event
    being replied to, used to stay in its thread. Deletions and timeouts are not content: UnsupportedAction.
    """
    if isinstance(action, React):
        if not action.reply_to or not action.text:
            raise ValueError("a react action needs reply_to and an emoji in text")
        content: dict[str, Any] = {
            "m.relates_to": {"rel_type": "m.annotation", "event_id": action.reply_to, "key": action.text}
        }
    elif isinstance(action, Post | Reply | Refuse | Report | Dm):
        body, formatted = _render(action.text, action.mentions)
        content = {
            "msgtype": "m.text",
            "body": body,
            "format": HTML_FORMAT,
            "formatted_body": formatted,
            "m.mentions": {"user_ids": list(dict.fromkeys(action.mentions))},
        }
        relates = _relation(action, reply_event)
        if relates:
            content["m.relates_to"] = relates
    else:
        raise UnsupportedAction(f"matrix cannot carry a {action.name or type(action).__name__} action as content")
    if action.key:
        content[KEY_FIELD] = action.key
    return content


def _relation(action: Action, reply_event: Mapping[str, Any] | None) -> dict[str, Any] | None:
    # Reports go to another room and DMs to a private one: a reply relation would point outside the room.
    if not isinstance(action, Post | Reply | Refuse):
        return None
    root = action.thread or thread_root(reply_event)
    if root:
        if action.reply_to:
            return {"rel_type": "m.thread", "event_id": root, "is_falling_back": False,
                    "m.in_reply_to": {"event_id": action.reply_to}}
        return {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                "m.in_reply_to": {"event_id": root}}
    if action.reply_to:
        return {"m.in_reply_to": {"event_id": action.reply_to}}
    return None

"""`lien import matrix`: Element "Export chat" JSON -> lien events (pure translation, one record at a time).

The format, as Element's JSON exporter writes it: `room_name`, `room_creator`, `topic`, `export_date`,
`exported_by`, and `messages`, a list of raw Matrix events (`event_id`, `sender`, `origin_server_ts` in ms, `type`,
`room_id`, `content`, `unsigned`); encrypted events are written decrypted.

Mapping (the same Matrix rules as the live adapter, `adapters.matrix_events`):
- community = `--community`, else the server name of the room id (a room of version 12 or later has none: then
  `--community` is required); room = room id.
- `m.room.message` -> `message`: the reply fallback (`> <@user> ...` quote) is stripped from the body; replies
  from `m.in_reply_to` (not the fallback one of a thread), threads from `rel_type: m.thread`, mentions from
  `m.mentions.user_ids` and pills; `m.notice` marks a bot. Non-text messages (images, files) have empty text.
  `rel_type: m.replace` -> `edit`. A message whose content was redacted is skipped and counted.
- `m.room.redaction` -> `delete`; `m.reaction` (`m.annotation`) -> `reaction`;
  `m.room.member` -> `member_join` / `member_leave` (a leave after an invite is a declined invitation; profile
  changes are skipped).
- Anything else (state events, stickers, undecrypted events) is skipped and counted by event type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from adapters.importing import (
    Entry,
    FatalInputError,
    describe,
    entry,
    message_head,
    message_line,
    need_id,
    opt_list,
    opt_obj,
    opt_str,
    reaction_line,
    reason_name,
    unix_ms_stamp,
)
from adapters.matrix_events import HTML_FORMAT, pill_mentions, strip_reply_fallback
from bot.errors import InputError
from bot.events import TS_RANGE, Delete, Edit, MemberJoin, MemberLeave

__all__ = ["PLATFORM", "MatrixTranslator"]

PLATFORM: Final = "matrix"
TEXT_MSGTYPES: Final = frozenset({"m.text", "m.notice", "m.emote"})
_YEAR_ONE: Final = datetime(1, 1, 1, tzinfo=UTC)  # of sort keys


class MatrixTranslator:
    """Translates the records of one Element JSON export (see the module docstring)."""

    def __init__(self, name: str, notes: Counter[str], *, community: str | None = None) -> None:
        self.name = name
        self.notes = notes
        self.community = community
        self._room = ""
        self._room_community = ""

    def begin(self, header: Mapping[str, Any]) -> None:
        """Refuse a DiscordChatExporter file given to the Matrix importer; Element's header needs no check."""
        if "guild" in header and "room_name" not in header:
            raise FatalInputError("this looks like a DiscordChatExporter export: use `lien import discord`",
                                  where=self.name)

    def _community(self, room_id: str) -> str:
        if self.community:
            return self.community
        if room_id != self._room:
            server = room_id.partition(":")[2]
            if not server:
                raise FatalInputError(f"room {reason_name(room_id)} has no server name (room version 12 or "
                                      "later): pass --community NAME", field="room_id")
            self._room, self._room_community = room_id, server
        return self._room_community

    def translate(self, record: Any) -> Entry | str:
        """The entry of the event one Matrix event means, or why it has none."""
        if type(record) is not dict:
            raise InputError(f"expected a JSON object, got {describe(record)}")
        etype = need_id(record, "type", "type")
        event_id = need_id(record, "event_id", "event_id")
        sender = need_id(record, "sender", "sender")
        room = need_id(record, "room_id", "room_id")
        stamp = _timestamp(record)
        content = opt_obj(record, "content", "content") or {}
        community = self._community(room)
        if etype == "m.room.message":
            return self._message(record, content, community, room, event_id, sender, stamp)
        if etype == "m.reaction":
            rel = _relation(content)
            if rel is None or rel.get("rel_type") != "m.annotation":
                if not content:
                    return "redacted"
                raise InputError("expected an m.annotation relation", field="content.m.relates_to.rel_type")
            target = need_id(rel, "event_id", "content.m.relates_to.event_id")
            key = need_id(rel, "key", "content.m.relates_to.key")
            return stamp[0], "reaction", reaction_line(community, room, target, sender, key, stamp[1])
        if etype == "m.room.redaction":
            redacts = record.get("redacts", content.get("redacts"))
            if type(redacts) is not str or not redacts:
                field = "redacts"
                if redacts is None:
                    raise InputError("required field is missing (top level or in content)", field=field)
                raise InputError(f"expected a string id, got {describe(redacts)}", field=field)
            return entry(Delete(community=community, room=room, id=redacts, ts=_datetime(stamp)))
        if etype == "m.room.member":
            return self._membership(record, content, community, stamp)
        if etype == "m.room.encrypted":
            return "not decrypted at export"
        return f"event type: {reason_name(etype)}"

    def _message(
        self, ev: Mapping[str, Any], content: Mapping[str, Any], community: str, room: str, event_id: str,
        sender: str, stamp: tuple[int, str],
    ) -> Entry | str:
        if not content or _redacted(ev):
            return "redacted"
        rel = _relation(content)
        rel_type = rel.get("rel_type") if rel is not None else None
        if rel_type == "m.replace":
            assert rel is not None
            original = need_id(rel, "event_id", "content.m.relates_to.event_id")
            new = opt_obj(content, "m.new_content", "content.m.new_content")
            if new is None:
                raise InputError("required field is missing", field="content.m.new_content")
            body = _body(new, "content.m.new_content.body")
            return entry(Edit(community=community, room=room, id=original, text=strip_reply_fallback(body),
                               ts=_datetime(stamp)))

        msgtype = opt_str(content, "msgtype", "content.msgtype")
        text = _body(content, "content.body") if msgtype in TEXT_MSGTYPES else ""
        in_reply_to = None
        thread = None
        if rel is not None:
            reply = opt_obj(rel, "m.in_reply_to", "content.m.relates_to.m.in_reply_to")
            if reply is not None:
                in_reply_to = need_id(reply, "event_id", "content.m.relates_to.m.in_reply_to.event_id")
            if rel_type == "m.thread":
                thread = need_id(rel, "event_id", "content.m.relates_to.event_id")
        if in_reply_to:
            text = strip_reply_fallback(text)
        # In a thread, `is_falling_back: true` marks an in_reply_to kept only for clients without thread support.
        reply_to = None if (thread and rel is not None and rel.get("is_falling_back") is True) else in_reply_to

        mentions: list[str] = []
        declared = opt_obj(content, "m.mentions", "content.m.mentions")
        if declared is not None:
            for i, uid in enumerate(opt_list(declared, "user_ids", "content.m.mentions.user_ids")):
                if type(uid) is not str or not uid:
                    raise InputError(f"expected a user id, got {describe(uid)}",
                                     field=f"content.m.mentions.user_ids[{i}]")
                mentions.append(uid)
        formatted = content.get("formatted_body")
        if content.get("format") == HTML_FORMAT and type(formatted) is str:
            mentions.extend(pill_mentions(formatted))
        # m.notice is the spec's marker for automated senders (as in the live adapter).
        line = message_line(message_head(PLATFORM, community, room), event_id, stamp[1], sender, None, text,
                            reply_to, thread, dict.fromkeys(mentions), msgtype == "m.notice")
        return stamp[0], "message", line

    def _membership(self, ev: Mapping[str, Any], content: Mapping[str, Any], community: str,
                    stamp: tuple[int, str]) -> Entry | str:
        target = need_id(ev, "state_key", "state_key")
        membership = opt_str(content, "membership", "content.membership")
        if membership is None:
            return "redacted"
        unsigned = opt_obj(ev, "unsigned", "unsigned") or {}
        prev_content = unsigned.get("prev_content", ev.get("prev_content"))
        prev = prev_content.get("membership") if type(prev_content) is dict else None
        if membership == "join":
            if prev == "join":
                return "membership: profile change"
            return entry(MemberJoin(community=community, author=target, ts=_datetime(stamp)))
        # A leave after an invite or a knock is a declined invitation, not a member leaving.
        if membership in ("leave", "ban") and prev not in ("invite", "knock", "leave", "ban"):
            return entry(MemberLeave(community=community, author=target, ts=_datetime(stamp)))
        return f"membership: {reason_name(membership)}"


def _timestamp(ev: Mapping[str, Any]) -> tuple[int, str]:
    """`origin_server_ts` (milliseconds since 1970) as a sort key and a spec timestamp."""
    ms = ev.get("origin_server_ts")
    if type(ms) is not int:
        if ms is None:
            raise InputError("required field is missing", field="origin_server_ts")
        raise InputError(f"expected milliseconds since 1970 (an integer), got {describe(ms)}",
                         field="origin_server_ts")
    try:
        return unix_ms_stamp(ms)
    except OverflowError:
        raise InputError(f"timestamp out of range ({TS_RANGE}): {ms}", field="origin_server_ts") from None


def _datetime(stamp: tuple[int, str]) -> datetime:
    return _YEAR_ONE + timedelta(microseconds=stamp[0])


def _relation(content: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return opt_obj(content, "m.relates_to", "content.m.relates_to")


def _redacted(ev: Mapping[str, Any]) -> bool:
    unsigned = ev.get("unsigned")
    return type(unsigned) is dict and "redacted_because" in unsigned


def _body(content: Mapping[str, Any], field: str) -> str:
    body = content.get("body")
    if type(body) is str:
        return body
    if body is None:
        raise InputError("required field is missing", field=field)
    raise InputError(f"expected a string, got {describe(body)}", field=field)

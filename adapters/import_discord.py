"""`lien import discord`: DiscordChatExporter JSON exports -> lien events (pure translation, one record at a time).

The format, as DiscordChatExporter's JSON writer produces it: a top-level `guild` {id, name}, `channel` {id, type,
categoryId, category, name, topic}, then `messages`, each with `id`, `type` (the message kind's name, or its number
for kinds the exporter has no name for), `timestamp` (ISO 8601 with offset), `content`, `author` {id, name,
nickname, isBot, ...}, `reference` {messageId, channelId, guildId}, `mentions` [users], `reactions` [{emoji {id,
name}, count, users?}], and attachments, embeds, stickers that lien does not need.

Mapping (the same as the live Discord adapter's):
- community = guild id; room = channel id. A thread or forum-post export (channel type Guild*Thread) has its
  parent channel in `categoryId` (the exporter's name for the parent): room = parent, thread = the thread's id.
- `Default`, `Reply` and application-command messages -> `message` (reply_to from `reference.messageId` for
  replies only: a pin or a forward also carries a reference); `GuildMemberJoin` -> `member_join` (bots skipped).
  Other system messages (pins, thread-created notices, ...) are skipped and counted.
- Reactions that list their users -> one `reaction` per user who is not a bot, dated at the message's time (the
  export does not date reactions). Reactions with a count only are counted as `reactions_without_users`.
- Direct-message exports are refused: lien keeps no record of private conversations.
- Edits: the export holds only the final text, written as the message's text at its original time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Final

from adapters.importing import (
    Entry,
    FatalInputError,
    describe,
    entry,
    iso_stamp,
    message_head,
    message_line,
    need_id,
    need_obj,
    opt_bool,
    opt_list,
    opt_obj,
    opt_str,
    reaction_line,
    reason_name,
)
from adapters.jsonl import parse_ts
from bot.errors import InputError
from bot.events import MemberJoin

__all__ = ["PLATFORM", "DiscordTranslator"]

PLATFORM: Final = "discord"
#: Message kinds that carry something a member wrote (names, and numbers for kinds the exporter cannot name).
USER_KINDS: Final = frozenset({"Default", "Reply", "ChatInputCommand", "ContextMenuCommand", "0", "19", "20", "23"})
REPLY_KINDS: Final = frozenset({"Reply", "19"})
JOIN_KINDS: Final = frozenset({"GuildMemberJoin", "7"})
THREAD_CHANNELS: Final = frozenset({"GuildNewsThread", "GuildPublicThread", "GuildPrivateThread", "10", "11", "12"})
DM_CHANNELS: Final = frozenset({"DirectTextChat", "DirectGroupTextChat", "1", "3"})
#: DiscordChatExporter's guild id for direct messages.
DM_GUILD: Final = "0"


class DiscordTranslator:
    """Translates the records of one DiscordChatExporter JSON file (see the module docstring)."""

    def __init__(self, name: str, notes: Counter[str]) -> None:
        self.name = name
        self.notes = notes
        self.community = ""
        self.room = ""
        self.thread: str | None = None
        self._head = ""  # what every message line of this file starts with (see message_head)

    def begin(self, header: Mapping[str, Any]) -> None:
        """Read guild and channel; refuse DM exports and files that are not DiscordChatExporter exports."""
        try:
            self._begin(header)
        except FatalInputError:
            raise
        except InputError as e:
            hint = ""
            if "guild" not in header and "room_name" in header:
                hint = " (not a DiscordChatExporter JSON export: this looks like an Element export, use `lien " \
                       "import matrix`)"
            elif "guild" not in header:
                hint = " (not a DiscordChatExporter JSON export)"
            raise FatalInputError(e.problem + hint, where=self.name, field=e.field) from None

    def _begin(self, header: Mapping[str, Any]) -> None:
        guild = need_obj(header, "guild", "guild")
        channel = need_obj(header, "channel", "channel")
        self.community = need_id(guild, "id", "guild.id")
        channel_id = need_id(channel, "id", "channel.id")
        kind = opt_str(channel, "type", "channel.type")
        if self.community == DM_GUILD or kind in DM_CHANNELS:
            raise FatalInputError("a direct-message export: lien imports no private conversations",
                                  where=self.name, field="channel.type")
        if kind in THREAD_CHANNELS:
            parent = channel.get("categoryId")
            if not (type(parent) is str and parent):
                raise FatalInputError("a thread export needs its parent channel id here", where=self.name,
                                      field="channel.categoryId")
            self.room, self.thread = parent, channel_id
        else:
            self.room, self.thread = channel_id, None
        self._head = message_head(PLATFORM, self.community, self.room)

    def translate(self, record: Any) -> Entry | list[Entry] | str:
        """The entries of one exported message's events, or why it has none."""
        if type(record) is not dict:
            raise InputError(f"expected a JSON object, got {describe(record)}")
        kind = record.get("type")
        if type(kind) is not str:
            if kind is None:
                raise InputError("required field is missing", field="type")
            raise InputError(f"expected a string, got {describe(kind)}", field="type")
        if kind in USER_KINDS:
            return self._message(record, kind)
        if kind in JOIN_KINDS:
            author = need_obj(record, "author", "author")
            author_id = need_id(author, "id", "author.id")
            ts = parse_ts(_stamp(record), "", "timestamp")
            if opt_bool(author, "isBot", "author.isBot"):
                return "bot joined"
            return [entry(MemberJoin(community=self.community, author=author_id, ts=ts))]
        return f"system message: {reason_name(kind)}"

    def _message(self, m: dict[str, Any], kind: str) -> Entry | list[Entry]:
        # Each field is read directly and checked by type; the helpers only run to build the error.
        mid = m.get("id")
        if type(mid) is not str or not mid:
            mid = need_id(m, "id", "id")
        stamp = m.get("timestamp")
        if stamp is None:
            raise InputError("required field is missing", field="timestamp")
        key, ts = iso_stamp(stamp, "timestamp")
        author = m.get("author")
        if type(author) is not dict:
            author = need_obj(m, "author", "author")
        author_id = author.get("id")
        if type(author_id) is not str or not author_id:
            author_id = need_id(author, "id", "author.id")
        is_bot = author.get("isBot", False)
        if type(is_bot) is not bool:
            is_bot = opt_bool(author, "isBot", "author.isBot")
        author_name = author.get("nickname") or author.get("name")
        if author_name is not None and type(author_name) is not str:
            author_name = opt_str(author, "nickname", "author.nickname") or opt_str(author, "name", "author.name")
        text = m.get("content", _ABSENT)
        if type(text) is not str:
            if text is _ABSENT:
                raise InputError("required field is missing", field="content")
            if text is not None:
                raise InputError(f"expected a string, got {describe(text)}", field="content")
            text = ""
        reply_to = None
        if kind in REPLY_KINDS:
            reference = m.get("reference")
            if reference is not None:
                if type(reference) is not dict:
                    opt_obj(m, "reference", "reference")
                reply_to = reference.get("messageId")
                if reply_to is not None and type(reply_to) is not str:
                    opt_str(reference, "messageId", "reference.messageId")
                # A null messageId: the replied-to message was deleted.
                reply_to = reply_to or None
        mentions: list[str] = []
        mentioned = m.get("mentions")
        if mentioned:
            if type(mentioned) is not list:
                opt_list(m, "mentions", "mentions")
            mentions = _user_ids(mentioned, "mentions")
        message = (key, "message", message_line(self._head, mid, ts, author_id, author_name, text, reply_to,
                                                 self.thread, mentions, is_bot))
        reactions = m.get("reactions")
        if not reactions:
            return message
        if type(reactions) is not list:
            opt_list(m, "reactions", "reactions")
        entries = [message]
        self._reactions(reactions, mid, key, ts, entries)
        return entries

    def _reactions(self, reactions: list[Any], mid: str, key: int, ts: str, entries: list[Entry]) -> None:
        for i, r in enumerate(reactions):
            # Field names are only made for an error (as in _message).
            if type(r) is not dict:
                raise InputError(f"expected an object, got {describe(r)}", field=f"reactions[{i}]")
            emoji = r.get("emoji")
            if type(emoji) is not dict:
                emoji = need_obj(r, "emoji", f"reactions[{i}].emoji")
            name = emoji.get("name")
            if type(name) is not str or not name:
                name = need_id(emoji, "name", f"reactions[{i}].emoji.name")
            emoji_id = emoji.get("id")
            if emoji_id is not None and type(emoji_id) is not str:
                opt_str(emoji, "id", f"reactions[{i}].emoji.id")
            # Custom emoji keep their id so two servers' ":thanks:" stay apart (as the live adapter does).
            emoji_key = f"{name}:{emoji_id}" if emoji_id else name
            count = r.get("count")
            if count is not None and (type(count) is not int or count < 0):
                raise InputError(f"expected a count, got {describe(count)}", field=f"reactions[{i}].count")
            users = r.get("users")
            if users is None:
                self.notes["reactions_without_users"] += count if count is not None else 1
                continue
            if type(users) is not list:
                raise InputError(f"expected an array, got {describe(users)}", field=f"reactions[{i}].users")
            for j, u in enumerate(users):
                user_id = u.get("id") if type(u) is dict else None
                if type(user_id) is not str or not user_id:
                    user_id = _user_id(u, f"reactions[{i}].users[{j}]")
                if u.get("isBot") is True:
                    self.notes["bot_reactions"] += 1
                    continue
                entries.append((key, "reaction", reaction_line(self.community, self.room, mid, user_id, emoji_key,
                                                               ts)))
            if count is not None and count > len(users):
                self.notes["reactions_without_users"] += count - len(users)


def _stamp(m: Mapping[str, Any]) -> Any:
    value = m.get("timestamp")
    if value is None:
        raise InputError("required field is missing", field="timestamp")
    return value


_ABSENT: Final = object()


def _user_id(user: Any, field: str) -> str:
    if type(user) is not dict:
        raise InputError(f"expected a user object, got {describe(user)}", field=field)
    return need_id(user, "id", f"{field}.id")


def _user_ids(users: list[Any], field: str) -> list[str]:
    """The ids of a list of user objects, each once, in order; the first bad one raises."""
    ids = []
    for i, user in enumerate(users):
        uid = user.get("id") if type(user) is dict else None
        if type(uid) is not str or not uid:
            uid = _user_id(user, f"{field}[{i}]")
        ids.append(uid)
    return list(dict.fromkeys(ids)) if len(ids) > 1 else ids

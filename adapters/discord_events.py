"""Pure translation between Discord gateway payloads and lien's events and actions. No network, no client.

Inbound: `to_events(name, data, ...)` takes a dispatch name (`MESSAGE_CREATE`, ...) and its raw `d` payload, shaped
as Discord's API documentation specifies, and returns the lien events it means (usually one, often none).
What the payload alone cannot tell (is this channel a thread? what may this member do?) comes from a `Directory`,
which the adapter backs with discord.py's cache and tests back with `StaticDirectory`.

Room mapping: `room` is the channel a message is in, except inside a thread or forum post, where `room` is the
parent channel and `thread` the thread id (a forum post's starter message has the thread's id), so a room's
settings apply to its threads.

Outbound: `to_send_chunks(action)` gives the keyword arguments for discord.py's `send`, with every mass mention
neutralised and `allowed_mentions` naming exactly the action's mentions. lien's neutral text already writes a member
mention as `<@ID>`, which is Discord's own syntax; a question link `<link:ROOM/ID>` becomes a jump link
`https://discord.com/channels/GUILD/CHANNEL/ID` (`render_links`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import discord

from bot.actions import Action, Dm, Post, Refuse, Reply, Report
from bot.config import HARD_MAX_RECIPIENTS
from bot.errors import UnsupportedAction
from bot.events import Command, Delete, Edit, Event, MemberJoin, MemberLeave, Message, Reaction

#: `community` of commands that arrive in a private conversation with lien (Discord's own name for DMs).
DM_COMMUNITY = "@me"
#: Name of lien's top-level slash command.
SLASH_COMMAND = "lien"

ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
_ALL_PERMISSIONS = (1 << 64) - 1

DISCORD_EPOCH_MS = 1_420_070_400_000
#: Message types that carry something a member wrote: DEFAULT, REPLY, CHAT_INPUT_COMMAND, CONTEXT_MENU_COMMAND.
_USER_MESSAGE_TYPES = frozenset({0, 19, 20, 23})
_REPLY_TYPE = 19
#: Channel types of threads: announcement, public, private.
THREAD_TYPES = frozenset({10, 11, 12})
_APPLICATION_COMMAND = 2
_SUBCOMMAND, _SUBCOMMAND_GROUP = 1, 2

#: Dispatch names `to_events` understands; the adapter parses only these.
HANDLED_DISPATCHES = frozenset({
    "MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK", "MESSAGE_REACTION_ADD",
    "GUILD_MEMBER_ADD", "GUILD_MEMBER_REMOVE", "THREAD_CREATE", "INTERACTION_CREATE",
})

_MAX_CONTENT = 2000
_ZWSP = "\u200b"
_MASS_MENTION = re.compile(r"@(everyone|here)")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
#: lien's neutral question link, `<link:ROOM/MESSAGE>` (bot.render.question_link).
_LINK = re.compile(r"<link:([^/<>\s]+)/([^/<>\s]+)>")
#: A Discord message link, as members paste it into a command ("ptb."/"canary." clients, the old domain too).
_MESSAGE_URL = re.compile(r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/channels/(?:\d+|@me)/\d+/(\d+)/?")
WEB_BASE = "https://discord.com/channels"

#: Given a message id, the channel it lives in when that is not its room (a thread), else None.
ChannelOf = Callable[[str], "str | None"]


@dataclass(frozen=True, slots=True)
class TranslationContext:
    """Settings translation needs: the command prefix, who counts as admin, and who is a bot."""

    prefix: str | None = "!lien"
    #: Role ids whose members may run admin commands, besides those with Manage Server.
    admin_roles: frozenset[str] = frozenset()
    #: lien's own user id on Discord (its messages are marked is_bot).
    self_id: str | None = None
    bot_ids: frozenset[str] = frozenset()


class Directory(Protocol):
    """What translation may ask about the platform's state; answers from a cache, never from the network."""

    def parent_of(self, channel_id: str) -> str | None:
        """The parent channel id when `channel_id` is a thread or forum post, else None."""
        ...

    def guild_permissions(self, guild_id: str, user_id: str, role_ids: Sequence[str]) -> int | None:
        """The member's guild-level permission bits, or None when the guild is unknown."""
        ...


@dataclass(slots=True)
class StaticDirectory:
    """A `Directory` kept from payloads it observes (GUILD_CREATE, THREAD_CREATE, ...); for tests and replays."""

    parents: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    #: guild id -> role id -> permission bits (the @everyone role has the guild's id).
    roles: dict[str, dict[str, int]] = field(default_factory=dict)

    def observe(self, name: str, data: Mapping[str, Any]) -> None:
        """Learn threads, roles and owners from a dispatch."""
        if name == "GUILD_CREATE":
            gid = str(data["id"])
            self.owners[gid] = str(data["owner_id"])
            self.roles[gid] = {str(r["id"]): int(r["permissions"]) for r in data.get("roles", [])}
            for thread in data.get("threads", []):
                self._thread(thread)
        elif name in ("THREAD_CREATE", "THREAD_UPDATE"):
            self._thread(data)
        elif name == "THREAD_DELETE":
            self.parents.pop(str(data["id"]), None)
        elif name in ("GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE"):
            role = data["role"]
            self.roles.setdefault(str(data["guild_id"]), {})[str(role["id"])] = int(role["permissions"])
        elif name == "GUILD_ROLE_DELETE":
            self.roles.get(str(data["guild_id"]), {}).pop(str(data["role_id"]), None)

    def _thread(self, data: Mapping[str, Any]) -> None:
        if data.get("type") in THREAD_TYPES and data.get("parent_id"):
            self.parents[str(data["id"])] = str(data["parent_id"])

    def parent_of(self, channel_id: str) -> str | None:
        return self.parents.get(channel_id)

    def guild_permissions(self, guild_id: str, user_id: str, role_ids: Sequence[str]) -> int | None:
        roles = self.roles.get(guild_id)
        if roles is None:
            return None
        return compute_guild_permissions(
            owner_id=self.owners.get(guild_id), everyone=roles.get(guild_id, 0), role_permissions=roles,
            user_id=user_id, role_ids=role_ids,
        )


def compute_guild_permissions(
    *, owner_id: str | None, everyone: int, role_permissions: Mapping[str, int], user_id: str,
    role_ids: Iterable[str],
) -> int:
    """Guild-level permissions as Discord computes them: owner and Administrator get everything."""
    if owner_id is not None and user_id == owner_id:
        return _ALL_PERMISSIONS
    bits = everyone
    for rid in role_ids:
        bits |= role_permissions.get(rid, 0)
    return _ALL_PERMISSIONS if bits & ADMINISTRATOR else bits


def is_admin(permissions: int | None, role_ids: Iterable[str], admin_roles: frozenset[str]) -> bool:
    """Manage Server (or Administrator), or one of the configured admin roles."""
    if permissions is not None and permissions & (MANAGE_GUILD | ADMINISTRATOR):
        return True
    return any(r in admin_roles for r in role_ids)


def snowflake_time(snowflake: str | int) -> datetime:
    """The creation time encoded in a Discord id."""
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _parse_ts(value: str) -> datetime:
    ts = datetime.fromisoformat(value)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _room_and_thread(channel_id: str, directory: Directory) -> tuple[str, str | None]:
    parent = directory.parent_of(channel_id)
    return (parent, channel_id) if parent else (channel_id, None)


def parse_prefixed(text: str, prefix: str | None) -> tuple[str, tuple[str, ...]] | None:
    """`("helper", ("on",))` for `"!lien helper on"`; None when the text is not a lien command."""
    if not prefix or not text.startswith(prefix):
        return None
    rest = text[len(prefix):]
    if rest and not rest[0].isspace():
        return None  # "!lienx" is someone else's command
    try:
        words = shlex.split(rest)
    except ValueError:  # an unbalanced quote: the core's parser falls back the same way
        words = rest.split()
    if not words:
        return "help", ()
    # Same bounds as the core's own parser (bot.commands): 20 arguments of 200 characters at most.
    return words[0].lower(), tuple(message_ref(w)[:200] for w in words[1:21])


def message_ref(value: str) -> str:
    """A pasted Discord message link as the message id the core expects; any other value unchanged."""
    found = _MESSAGE_URL.fullmatch(value.strip())
    return found.group(1) if found else value


def to_events(
    name: str, data: Mapping[str, Any], *, ctx: TranslationContext, directory: Directory,
    received_at: datetime, guild_id: str | None = None,
) -> list[Event]:
    """The lien events one gateway dispatch means; `received_at` dates payloads that carry no time.

    `guild_id` supplies the guild for REST message objects (history), which lack it.
    """
    if name == "MESSAGE_CREATE":
        event = message_to_event(data, ctx=ctx, directory=directory, guild_id=guild_id)
        return [event] if event else []
    if name == "MESSAGE_UPDATE":
        return _edit(data, directory, received_at)
    if name == "MESSAGE_DELETE":
        return _deletes(data, [str(data["id"])], directory, received_at)
    if name == "MESSAGE_DELETE_BULK":
        return _deletes(data, [str(i) for i in data["ids"]], directory, received_at)
    if name == "MESSAGE_REACTION_ADD":
        return _reaction(data, ctx, directory, received_at)
    if name == "GUILD_MEMBER_ADD":
        user = data["user"]
        if user.get("bot"):
            return []
        ts = _parse_ts(data["joined_at"]) if data.get("joined_at") else received_at
        return [MemberJoin(community=str(data["guild_id"]), author=str(user["id"]), ts=ts)]
    if name == "GUILD_MEMBER_REMOVE":
        user = data["user"]
        if user.get("bot"):
            return []
        return [MemberLeave(community=str(data["guild_id"]), author=str(user["id"]), ts=received_at)]
    if name == "INTERACTION_CREATE":
        command = interaction_to_command(data, ctx=ctx, directory=directory)
        return [command] if command else []
    # THREAD_CREATE only teaches the directory (the adapter's cache) where the thread lives.
    return []


def message_to_event(
    data: Mapping[str, Any], *, ctx: TranslationContext, directory: Directory, guild_id: str | None = None,
) -> Message | Command | None:
    """A MESSAGE_CREATE (or REST message object) as a `Message`, or a `Command` when it starts with the prefix."""
    if data.get("type", 0) not in _USER_MESSAGE_TYPES:
        return None  # joins, pins, thread-created notices, thread starter stubs...
    author = data["author"]
    author_id = str(author["id"])
    text = data.get("content") or ""
    channel_id = str(data["channel_id"])
    ts = _parse_ts(data["timestamp"])
    is_bot = bool(author.get("bot") or author.get("system") or data.get("webhook_id")
                  or author_id in ctx.bot_ids or (ctx.self_id is not None and author_id == ctx.self_id))
    community = data.get("guild_id") or guild_id
    parsed = None if is_bot else parse_prefixed(text, ctx.prefix)

    if community is None:
        if parsed is None:
            return None  # lien keeps no record of private conversations
        return Command(community=DM_COMMUNITY, room=channel_id, id=str(data["id"]), author=author_id, ts=ts,
                       name=parsed[0], args=parsed[1], is_admin=False, is_dm=True)

    community = str(community)
    room, thread = _room_and_thread(channel_id, directory)
    if parsed is not None:
        role_ids = [str(r) for r in (data.get("member") or {}).get("roles", [])]
        perms = directory.guild_permissions(community, author_id, role_ids)
        return Command(community=community, room=room, id=str(data["id"]), author=author_id, ts=ts,
                       name=parsed[0], args=parsed[1], is_admin=is_admin(perms, role_ids, ctx.admin_roles))

    reply_to = None
    reference = data.get("message_reference")
    if data.get("type") == _REPLY_TYPE and reference and reference.get("message_id"):
        reply_to = str(reference["message_id"])
    mentions = tuple(dict.fromkeys(str(u["id"]) for u in data.get("mentions", [])))
    member = data.get("member") or {}
    author_name = member.get("nick") or author.get("global_name") or author.get("username")
    return Message(community=community, room=room, id=str(data["id"]), ts=ts, author=author_id, text=text,
                   reply_to=reply_to, thread=thread, mentions=mentions, is_bot=is_bot,
                   author_name=author_name, platform="discord")


def _edit(data: Mapping[str, Any], directory: Directory, received_at: datetime) -> list[Event]:
    if "content" not in data or not data.get("guild_id"):
        return []  # embed unfurls and other partial updates change no text
    room, _ = _room_and_thread(str(data["channel_id"]), directory)
    ts = _parse_ts(data["edited_timestamp"]) if data.get("edited_timestamp") else received_at
    return [Edit(community=str(data["guild_id"]), room=room, id=str(data["id"]), text=data["content"] or "",
                 ts=ts)]


def _deletes(data: Mapping[str, Any], ids: list[str], directory: Directory, received_at: datetime) -> list[Event]:
    if not data.get("guild_id"):
        return []
    room, _ = _room_and_thread(str(data["channel_id"]), directory)
    return [Delete(community=str(data["guild_id"]), room=room, id=i, ts=received_at) for i in ids]


def _reaction(data: Mapping[str, Any], ctx: TranslationContext, directory: Directory,
              received_at: datetime) -> list[Event]:
    user_id = str(data["user_id"])
    member_user = (data.get("member") or {}).get("user") or {}
    if not data.get("guild_id") or member_user.get("bot") or user_id == ctx.self_id or user_id in ctx.bot_ids:
        return []
    room, _ = _room_and_thread(str(data["channel_id"]), directory)
    emoji = data["emoji"]
    # Custom emoji keep their id so two servers' ":thanks:" stay apart; unicode emoji are their own name.
    key = f"{emoji['name']}:{emoji['id']}" if emoji.get("id") else emoji["name"]
    return [Reaction(community=str(data["guild_id"]), room=room, message=str(data["message_id"]),
                     author=user_id, emoji=key, ts=received_at)]


def interaction_to_command(
    data: Mapping[str, Any], *, ctx: TranslationContext, directory: Directory,
) -> Command | None:
    """An INTERACTION_CREATE for `/lien ...` as a `Command` whose id is the interaction id."""
    if data.get("type") != _APPLICATION_COMMAND:
        return None
    inner = data.get("data") or {}
    if inner.get("name") != SLASH_COMMAND or inner.get("type", 1) != 1:
        return None
    path: list[str] = []
    values: list[str] = []
    options: list[Mapping[str, Any]] = list(inner.get("options", []))
    while options:
        nested = next((o for o in options if o.get("type") in (_SUBCOMMAND, _SUBCOMMAND_GROUP)), None)
        if nested is None:
            values.extend(_option_text(o["value"]) for o in options if "value" in o)
            break
        path.append(str(nested["name"]))
        options = list(nested.get("options", []))
    if not path:
        return None
    name, args = path[0], (*path[1:], *values)
    ts = snowflake_time(data["id"])
    channel_id = str(data.get("channel_id") or (data.get("channel") or {}).get("id"))
    guild_id = data.get("guild_id")
    if guild_id is None:
        user = data.get("user") or (data.get("member") or {}).get("user") or {}
        return Command(community=DM_COMMUNITY, room=channel_id, id=str(data["id"]), author=str(user["id"]),
                       ts=ts, name=name, args=args, is_admin=False, is_dm=True)
    member = data["member"]
    role_ids = [str(r) for r in member.get("roles", [])]
    perms = int(member["permissions"]) if member.get("permissions") is not None else None
    room, _ = _room_and_thread(channel_id, directory)
    return Command(community=str(guild_id), room=room, id=str(data["id"]), author=str(member["user"]["id"]),
                   ts=ts, name=name, args=args, is_admin=is_admin(perms, role_ids, ctx.admin_roles))


def _option_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return message_ref(str(value))


# -- outbound ---------------------------------------------------------------------------------------------------

def neutralise(text: str) -> str:
    """`text` with @everyone, @here and role mentions broken by a zero-width space, so none can ping."""
    text = _MASS_MENTION.sub(lambda m: f"@{_ZWSP}{m.group(1)}", text)
    return _ROLE_MENTION.sub(lambda m: f"<@{_ZWSP}&{m.group(1)}>", text)


def allowed_mentions(action: Action) -> discord.AllowedMentions:
    """Pings allowed for `action`: exactly its mentioned users; never everyone, roles or the replied-to author."""
    if len(action.mentions) > HARD_MAX_RECIPIENTS:
        raise UnsupportedAction(f"{len(action.mentions)} mentions exceed the hard maximum of {HARD_MAX_RECIPIENTS}")
    users = [discord.Object(id=int(u)) for u in dict.fromkeys(action.mentions)]
    return discord.AllowedMentions(everyone=False, roles=False, users=users, replied_user=False)


def render_links(text: str, community: str, channel_of: ChannelOf | None = None) -> str:
    """`<link:ROOM/ID>` as a Discord jump link; `channel_of(ID)` names the thread when the message is in one."""
    def link(m: re.Match[str]) -> str:
        room, message = m.group(1), m.group(2)
        channel = (channel_of(message) if channel_of else None) or room
        return f"{WEB_BASE}/{community}/{channel}/{message}"

    return _LINK.sub(link, text)


def target_channel(action: Action) -> str:
    """The channel an action happens in: its thread when it has one, else its room."""
    channel = action.thread or action.room
    if channel is None:
        raise UnsupportedAction(f"{action.name} action without a room")
    return channel


def is_message_action(action: Action) -> bool:
    """True for actions performed by sending a message (post, reply, dm, refuse, report)."""
    return isinstance(action, Post | Reply | Dm | Refuse | Report)


def split_content(text: str, limit: int = _MAX_CONTENT) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut at line ends where possible."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    return [*pieces, text]


def to_send_chunks(action: Action, *, interaction: bool = False,
                   channel_of: ChannelOf | None = None) -> list[dict[str, Any]]:
    """`send` keyword arguments for each message `action` needs (Discord caps one message at 2000 characters).

    Only the first message replies to `reply_to`; every one allows exactly the action's mentions (`<@ID>` in the
    text is already Discord's mention syntax); question links become jump links into `action.community`.
    """
    if not is_message_action(action):
        raise UnsupportedAction(f"{action.name} is not sent as a message")
    pings = allowed_mentions(action)
    chunks = []
    text = render_links(neutralise(action.text), action.community, channel_of)
    for i, piece in enumerate(split_content(text)):
        kwargs: dict[str, Any] = {"content": piece, "allowed_mentions": pings}
        if interaction:
            kwargs["ephemeral"] = True
        elif i == 0 and action.reply_to and isinstance(action, Reply | Refuse):
            kwargs["reference"] = discord.MessageReference(
                message_id=int(action.reply_to), channel_id=int(target_channel(action)), fail_if_not_exists=False,
            )
        chunks.append(kwargs)
    return chunks


def to_send_kwargs(action: Action, *, interaction: bool = False,
                   channel_of: ChannelOf | None = None) -> dict[str, Any]:
    """Keyword arguments for one discord.py `send` (or interaction response when `interaction`); long text is cut."""
    kwargs = to_send_chunks(action, interaction=interaction, channel_of=channel_of)[0]
    text = render_links(neutralise(action.text), action.community, channel_of)
    if len(text) > _MAX_CONTENT:
        kwargs["content"] = text[: _MAX_CONTENT - 1] + "…"
    return kwargs

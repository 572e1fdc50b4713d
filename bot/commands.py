"""lien's chat commands: parsing `!lien ...` into a Command, and the table of handlers.

Every admin command checks `is_admin` here, in the core; adapters derive it only from platform permissions.
Requests to message, mention or invite many people are refused by name, with an explanation.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot import digest, health, render
from bot.actions import Action, Dm, Refuse, Reply
from bot.errors import ConfigError
from bot.events import Command, Message
from bot.model import MemberPrefs, QState

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.engine import Engine
    from bot.ports import Tx

log = logging.getLogger(__name__)

#: Commands lien refuses whoever asks, with the spec's reason and what they would have done.
REFUSED: dict[str, tuple[str, str]] = {
    "invite-all": ("mass_invite", "invite people in bulk"),
    "mass-invite": ("mass_invite", "invite people in bulk"),
    "invite": ("mass_invite", "invite people on anyone's behalf"),
    "dm-all": ("mass_dm", "send private messages to everyone"),
    "mass-dm": ("mass_dm", "send private messages in bulk"),
    "massdm": ("mass_dm", "send private messages in bulk"),
    "broadcast": ("mass_dm", "broadcast messages to everyone"),
    "mention-all": ("mass_mention", "mention everyone"),
    "ping-all": ("mass_mention", "mention everyone"),
    "everyone": ("mass_mention", "mention everyone"),
    "announce": ("mass_mention", "announce to everyone"),
}
ADMIN_ONLY = frozenset({"pause", "resume", "config", "pardon", "end-raid"})
#: Settings changes that make no sense from a private conversation with lien.
COMMUNITY_SETTINGS = frozenset({"pause", "resume", "config", "pardon", "end-raid"})
MAX_ARGS = 20
MAX_ARG_LEN = 200
COMMANDS_PER_MINUTE = 5


def parse_command(m: Message, prefix: str) -> Command:
    """Turn a prefixed message into a Command (`!lien helper on` -> name "helper", args ("on",))."""
    body = m.text[len(prefix) :].strip()
    try:
        words = shlex.split(body)
    except ValueError:
        words = body.split()
    words = [w[:MAX_ARG_LEN] for w in words[: MAX_ARGS + 1]]
    name = words[0].lower() if words else "help"
    return Command(m.community, m.room, m.id, m.author, m.ts, name, tuple(words[1:]), is_admin=False)


def command_key(id: str) -> str:
    """The idempotency key of a command (its message or interaction id): no member id, only the event's."""
    return f"command|{id}"


def _looks_like_member(arg: str) -> bool:
    return arg.startswith(("@", "<@")) and not arg.startswith("<@&")


def refusal(cmd: Command, max_recipients: int) -> str | None:
    """Why `cmd` is refused before it runs, whoever asks: "mass" (a mass request), "too_many" (more members than
    `max_recipients`), "admin" (admins only), "dm_settings" (community settings from a DM); None when admitted.
    One rule for the live runner and the history replay of `lien report`."""
    name = cmd.name.lower()
    if name in REFUSED:
        return "mass"
    if sum(1 for a in cmd.args if _looks_like_member(a)) > max_recipients:
        return "too_many"
    if name in ADMIN_ONLY and not cmd.is_admin:
        return "admin"
    if name in COMMUNITY_SETTINGS and cmd.is_dm:
        return "dm_settings"
    return None


class CommandRate:
    """At most COMMANDS_PER_MINUTE commands per member and community in any minute."""

    def __init__(self) -> None:
        self._recent: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)

    def admits(self, cmd: Command) -> bool:
        """Count `cmd` if it is within the rate; False (and not counted) when over it."""
        q = self._recent[(cmd.community, cmd.author)]
        while q and cmd.ts - q[0] >= timedelta(minutes=1):
            q.popleft()
        if len(q) >= COMMANDS_PER_MINUTE:
            return False
        q.append(cmd.ts)
        return True


Handler = Callable[["Tx", Command, str], Awaitable[list[Action]]]


class CommandRunner:
    """Runs commands against the engine's state; returns reply or refuse actions."""

    def __init__(self, engine: Engine, reload_settings: Callable[[], Settings] | None) -> None:
        self.engine = engine
        self.reload_settings = reload_settings
        self._rate = CommandRate()
        self._told: set[tuple[str, str]] = set()
        self._why: dict[tuple[str, str], str] = {}
        self.table: dict[str, Handler] = {
            "help": self._help, "policy": self._policy, "solved": self._solved,
            "not-a-question": self._not_a_question, "unanswered": self._unanswered, "helper": self._helper,
            "optout": self._optout, "optin": self._optin, "dms": self._dms, "why": self._why_cmd,
            "mydata": self._mydata, "forget-me": self._forget_me, "pause": self._pause, "resume": self._resume,
            "config": self._config, "health": self._health, "credit": self._credit, "pardon": self._pardon,
            "end-raid": self._end_raid,
        }

    async def run(self, tx: Tx, cmd: Command) -> list[Action]:
        """Run `cmd` once: a command seen before (a replay after a restart, a redelivery) is neither run nor
        answered again."""
        if not await tx.seen.first(cmd.community, command_key(cmd.id), cmd.ts):
            log.info("command %s in %s already handled; not run again", cmd.id, cmd.community)
            return []
        settings = self.engine.settings
        lang = settings.room(cmd.community, cmd.room).language
        prefs = await self.engine.members.get(tx, cmd.community, cmd.author)
        if prefs is not None and prefs.language:
            lang = prefs.language
        if not self._within_rate(cmd):
            return self._rate_refusal(cmd, lang)
        name = cmd.name.lower()
        limit = self.engine.gate.max_recipients
        match refusal(cmd, limit):
            case "mass":
                reason, what = REFUSED[name]
                return [self._refuse(cmd, reason, render.text("refuse_mass", lang, what=what))]
            case "too_many":
                return [self._refuse(cmd, "mass_mention", render.text("refuse_too_many", lang, n=limit))]
            case "admin":
                return [self._refuse(cmd, "permission", render.text("refuse_admin", lang))]
            case "dm_settings":
                return [self._refuse(cmd, "permission", render.text("refuse_dm_settings", lang))]
        handler = self.table.get(name)
        if handler is None:
            return [self._reply(cmd, render.text("unknown_command", lang, name=render.safe(name, 40),
                                                 prefix=settings.lien.command_prefix))]
        return await handler(tx, cmd, lang)

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _within_rate(self, cmd: Command) -> bool:
        if not self._rate.admits(cmd):
            return False
        self._told.discard((cmd.community, cmd.author))
        return True

    def _rate_refusal(self, cmd: Command, lang: str) -> list[Action]:
        key = (cmd.community, cmd.author)
        if key in self._told:
            return []  # one polite refusal, then silence
        self._told.add(key)
        return [self._refuse(cmd, "rate_limit", render.text("refuse_rate", lang))]

    def _reply(self, cmd: Command, text: str) -> Reply:
        return Reply(ts=self.engine.clock.now(), community=cmd.community, room=cmd.room, reply_to=cmd.id,
                     kind="command", text=text)

    def _refuse(self, cmd: Command, reason: str, text: str) -> Refuse:
        return Refuse(ts=self.engine.clock.now(), community=cmd.community, room=cmd.room, reply_to=cmd.id,
                      kind="command", reason=reason, text=text)

    def _usage(self, cmd: Command, lang: str, usage: str) -> list[Action]:
        return [self._reply(cmd, render.text("bad_args", lang, prefix=self.engine.settings.lien.command_prefix,
                                             usage=usage))]

    async def _prefs(self, tx: Tx, cmd: Command) -> MemberPrefs:
        return await self.engine.members.get(tx, cmd.community, cmd.author) or MemberPrefs(cmd.community, cmd.author)

    def note_why(self, community: str, member: str, line: str) -> None:
        self._why[(community, member)] = line

    # -- handlers ----------------------------------------------------------------------------------------------

    async def _help(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        return [self._reply(cmd, render.text("help", lang))]

    async def _policy(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        return [self._reply(cmd, render.text("policy", lang, n=self.engine.gate.max_recipients))]

    async def _solved(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        qid = cmd.args[0] if cmd.args else None
        if qid:
            await self.engine._load_refs(tx, cmd.community, [qid])
        changes = self.engine.tracker.resolve(cmd.community, cmd.room, cmd.author, qid, cmd.ts,
                                              moderator=cmd.is_admin)
        if not changes:
            return [self._reply(cmd, render.text("no_question", lang))]
        return [*await self.engine._apply(tx, changes), self._reply(cmd, render.text("solved_ok", lang))]

    async def _not_a_question(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        qid = cmd.args[0] if cmd.args else None
        if qid:
            await self.engine._load_refs(tx, cmd.community, [qid])
        changes = self.engine.tracker.withdraw(cmd.community, cmd.room, cmd.author, qid, cmd.ts)
        if not changes:
            return [self._reply(cmd, render.text("no_question", lang))]
        return [*await self.engine._apply(tx, changes), self._reply(cmd, render.text("withdrawn_ok", lang))]

    async def _unanswered(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        room = cmd.args[0] if cmd.args else cmd.room
        questions = await tx.questions.unanswered(cmd.community, room, 10)
        if not questions:
            return [self._reply(cmd, render.text("unanswered_none", lang))]
        items = "\n".join(
            f"- {render.question_link(q.room, q.id)} ({_age(cmd.ts, q.asked_ts)}"
            f"{', stale' if q.state == QState.STALE else ''})"
            for q in questions
        )
        return [self._reply(cmd, render.text("unanswered_list", lang, items=items))]

    async def _helper(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        if not cmd.args or cmd.args[0].lower() not in ("on", "off"):
            return self._usage(cmd, lang, "helper on|off [room|all]")
        on = cmd.args[0].lower() == "on"
        whole = len(cmd.args) > 1 and cmd.args[1].lower() in ("all", "community", "*")
        room = cmd.args[1] if len(cmd.args) > 1 and not whole else cmd.room
        prefs = await self._prefs(tx, cmd)
        rooms = set(prefs.helper_rooms)
        if on:
            if whole:
                prefs.helper_rooms = ()
            elif not (prefs.helper and not prefs.helper_rooms):  # already helping community-wide
                prefs.helper_rooms = tuple(sorted(rooms | {room}))
            prefs.helper = True
        else:
            rooms.discard(room)
            if whole or not rooms:
                prefs.helper, prefs.helper_rooms = False, ()
            else:
                prefs.helper_rooms = tuple(sorted(rooms))
        self.engine.members.save(tx, prefs)
        where = render.text("where_all" if whole else "where_room", lang)
        return [self._reply(cmd, render.text("helper_on" if on else "helper_off", lang, where=where))]

    async def _optout(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        prefs = await self._prefs(tx, cmd)
        prefs.optout = True
        self.engine.members.save(tx, prefs)
        return [self._reply(cmd, render.text("optout", lang, prefix=self.engine.settings.lien.command_prefix))]

    async def _optin(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        prefs = await self._prefs(tx, cmd)
        prefs.optout = False
        self.engine.members.save(tx, prefs)
        return [self._reply(cmd, render.text("optin", lang))]

    async def _dms(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        if not cmd.args or cmd.args[0].lower() not in ("on", "off"):
            return self._usage(cmd, lang, "dms on|off")
        prefs = await self._prefs(tx, cmd)
        prefs.dms = cmd.args[0].lower() == "on"
        self.engine.members.save(tx, prefs)
        return [self._reply(cmd, render.text("dms_on" if prefs.dms else "dms_off", lang))]

    async def _why_cmd(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        qid = cmd.args[0] if cmd.args else None
        if qid is None:
            line = self._why.get((cmd.community, cmd.author))
            if line is None:
                return [self._reply(cmd, render.text("why_none", lang))]
            qid = line
        nudges = await tx.nudges.for_question(cmd.community, qid)
        lines = [w for n in nudges for w in n.why]
        if not lines:
            return [self._reply(cmd, render.text("why_none", lang))]
        items = "\n".join(f"- {render.safe(line)}" for line in lines)
        return [self._reply(cmd, render.text("why", lang, question=render.safe(qid, 80), items=items))]

    async def _mydata(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        data = await tx.member_data(cmd.community, cmd.author)
        items = "\n".join(line for table, rows in sorted(data.items()) if rows
                          for line in render.table_lines(table, rows, lang)) or "-"
        # Every row, however many: several private messages, each within every platform's limit.
        now = self.engine.clock.now()
        return [Dm(ts=now, community=cmd.community, room=None, to=cmd.author, reply_to=cmd.id, kind="command",
                   text=page) for page in render.pages(render.text("mydata", lang, items=items))]

    async def _forget_me(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        counts = await tx.forget_member(cmd.community, cmd.author)
        self.engine.forget(cmd.community, cmd.author)
        self._why.pop((cmd.community, cmd.author), None)
        items = ", ".join(f"{n} {table}" for table, n in sorted(counts.items()) if n) or "0"
        return [self._reply(cmd, render.text("forgotten", lang, items=items))]

    async def _health(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        room = None
        if cmd.args:
            room = cmd.room if cmd.args[0].lower() in ("here", "this") else cmd.args[0].strip("<#>")
        now, since = cmd.ts, cmd.ts - 2 * health.WEEK
        qs = await tx.questions.asked_between(cmd.community, room, since, now)
        edges = await tx.edges.during(cmd.community, room, since, now)
        members = sorted({q.author for q in qs} | {e.helper for e in edges} | {e.asker for e in edges})
        seen = await tx.questions.first_seen(cmd.community, members)
        current = health.measure(qs, edges, now - health.WEEK, now, room=room, seen=seen)
        previous = health.measure(qs, edges, since, now - health.WEEK, room=room, seen=seen)
        return [self._reply(cmd, digest.health_text(current, previous, lang))]

    async def _credit(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        if not cmd.args or cmd.args[0].lower() not in ("on", "off"):
            return self._usage(cmd, lang, "credit on|off")
        prefs = await self._prefs(tx, cmd)
        prefs.named_thanks = cmd.args[0].lower() == "on"
        self.engine.members.save(tx, prefs)
        return [self._reply(cmd, render.text("credit_on" if prefs.named_thanks else "credit_off", lang))]

    async def _pardon(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        if not cmd.args:
            return self._usage(cmd, lang, "pardon @member")
        member = cmd.args[0].removeprefix("<@").removeprefix("!").removesuffix(">").removeprefix("@")
        self.engine.guard.pardon(cmd.community, member)
        return [self._reply(cmd, render.text("ok", lang))]

    async def _end_raid(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        return [*self.engine.guard.end_raid(cmd.community, now=self.engine.clock.now()),
                self._reply(cmd, render.text("ok", lang))]

    async def _pause(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        self.engine.pause(cmd.community)
        return [self._reply(cmd, render.text("paused", lang, prefix=self.engine.settings.lien.command_prefix))]

    async def _resume(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        self.engine.resume(cmd.community)
        return [self._reply(cmd, render.text("resumed", lang))]

    async def _config(self, tx: Tx, cmd: Command, lang: str) -> list[Action]:
        sub = cmd.args[0].lower() if cmd.args else "show"
        if sub == "show":
            rs = self.engine.settings.room(cmd.community, cmd.room)
            return [self._reply(cmd, json.dumps(rs.model_dump(), sort_keys=True, indent=1))]
        if sub == "reload":
            if self.reload_settings is None:
                return [self._reply(cmd, render.text("config_bad", lang, problem="no configuration file"))]
            try:
                fresh = self.reload_settings()
            except ConfigError as exc:
                return [self._reply(cmd, render.text("config_bad", lang, problem=render.safe(str(exc), 1500)))]
            self.engine.replace_settings(fresh)
            return [self._reply(cmd, render.text("config_reloaded", lang))]
        return self._usage(cmd, lang, "config show|reload")


def _age(now: datetime, then: datetime) -> str:
    minutes = int((now - then).total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} d"

"""The engine: the single entry point of the core. Events in, actions out.

`handle(event)` and `fire(key)` run one unit of work each (or share a batch during a replay), write the rows, and
return the actions for the edge to perform; every action passes the outbound gate. The question tracker keeps the
hot working set in memory; the rows are the truth, reloaded by `start()`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta

from bot import digest, health, render
from bot.actions import Action, Dm, Post, Reply, Report, to_record
from bot.commands import CommandRunner, parse_command
from bot.config import Settings
from bot.events import Command, Delete, Edit, Event, MemberJoin, MemberLeave, Message, Reaction
from bot.gate import OutboundGate
from bot.guards import Guard, JournaledStrikes
from bot.help_edges import edges_of
from bot.members import MemberDirectory
from bot.model import MessageMeta, Nudge, NudgeState, QState, Question, nudge_key
from bot.nudges import (
    AnswerTimes,
    JoinWave,
    Ladder,
    PingBudget,
    RoomHelp,
    longest_cooldown,
    quiet_until,
    rank_helpers,
)
from bot.ports import Clock, Scheduler, Store, Tx
from bot.tracker import Change, Linked, Opened, QuestionTracker, Resolved, Withdrawn

log = logging.getLogger(__name__)

PURGE_KEY = "purge"
DIGEST_KEY = "digest"
#: Recent messages per room the linker keeps in memory, and how long closed questions stay there.
WINDOW = 50
LINGER = timedelta(days=3)
EVICT_EVERY = timedelta(hours=1)
#: First-answer delays kept per room for adaptive nudge delays.
_DELAY_SAMPLES = 200
#: The reconcile pass looks at the nudges due within this window (earliest first, at most RECONCILE_LIMIT): a
#: lost timer is re-armed before it is due, without reading every pending row (a million take ~20 s).
RECONCILE_AHEAD = timedelta(hours=1)
RECONCILE_LIMIT = 10_000


class Engine:
    """Tracks questions, links answers, plans nudges and answers commands; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        scheduler: Scheduler,
        *,
        reload_settings: Callable[[], Settings] | None = None,
        owns: Callable[[str], bool] | None = None,
        deliver: bool = True,
    ) -> None:
        self.settings = settings
        #: Queue keyed actions in the outbox for exactly-once delivery. A replay says False: it writes every action
        #: it gets back and performs none, so nothing may be left for a live run on its database to send.
        self.deliver = deliver
        #: Does this process own the community's scheduled work? (Discord shards: only the shard's process.)
        self.owns: Callable[[str], bool] = owns or (lambda community: True)
        self.store = store
        self.clock = clock
        self.scheduler = scheduler
        self.tracker = QuestionTracker(settings, window=WINDOW, linger=LINGER)
        self.gate = OutboundGate(settings.lien.max_recipients)
        self.commands = CommandRunner(self, reload_settings)
        self.members = MemberDirectory()
        #: The guard's strikes are stored as they change, and read back by `start`.
        self._strikes = JournaledStrikes()
        self.guard = Guard(lambda c, r: self.settings.room(c, r), prefix=settings.lien.command_prefix,
                           strikes=self._strikes)
        self.budget = PingBudget()
        self.room_help = RoomHelp()
        self.join_wave = JoinWave()
        #: Communities where nudges wait: paused by an admin or frozen by a join wave.
        self.paused: set[str] = set()
        self._pending: dict[str, Nudge] = {}
        self.answer_times = AnswerTimes(_DELAY_SAMPLES)
        self._last_level1: dict[tuple[str, str, str], datetime] = {}
        self._room_latest: dict[tuple[str, str], datetime] = {}
        #: Members pinged at level 2 per question, to learn whether they helped (budget halving).
        self._pinged: dict[tuple[str, str], tuple[str, ...]] = {}
        self._batch: _Batch | None = None
        self.names: dict[tuple[str, str], str] = {}
        self._evicted_at = datetime.min.replace(tzinfo=UTC)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self, *, purge: bool = True) -> list[Nudge]:
        """Warm start from the rows: live questions into the tracker, pending nudges re-armed or caught up.

        Nudges overdue by less than the catch-up window fire now; older ones become `skipped_overdue` and are
        returned, for the caller to tell its user in its own terms (`log_skipped` for an operator's log).
        `purge=False` (replays of history) leaves retention to live deployments.
        """
        now = self.clock.now()
        skipped: list[Nudge] = []
        async with self.store.transaction() as tx:
            live = [q for q in await tx.questions.live(now - LINGER) if self.owns(q.community)]
            # An answered question needs its answers' authors and times: a later answer or thanks refers to them.
            answers = [a for q in live if q.answers for a in await tx.answers.for_question(q.community, q.id)]
            self.tracker.remember((), live, answers)
            # Once per room, not per question: a busy room may hold thousands of live questions.
            last_asked: dict[tuple[str, str], datetime] = {}
            for q in live:
                last_asked[(q.community, q.room)] = max(q.asked_ts, last_asked.get((q.community, q.room), q.asked_ts))
            for (community, room), asked in last_asked.items():
                metas = await tx.messages.recent(community, room, WINDOW)
                self.tracker.remember(metas, (), ())
                self._room_latest[(community, room)] = max((m.ts for m in metas), default=asked)
            for n in await tx.nudges.pending():
                if not self.owns(n.community):
                    continue
                if self._too_late(n, now):
                    n.state = NudgeState.SKIPPED_OVERDUE
                    tx.nudges.save(n)
                    skipped.append(n)
                    continue
                self._pending[n.key] = n
                self.scheduler.at(max(n.due, now), n.key)
            await self._restore_budgets(tx, now)
            self._strikes.load(await tx.strikes.since(now - longest_strike_window(self.settings)))
        if purge:
            self.scheduler.at(now + timedelta(days=1), PURGE_KEY)
            self.scheduler.at(digest.next_digest_at(now, self.settings.timezone), DIGEST_KEY)
        return skipped

    def _too_late(self, n: Nudge, now: datetime) -> bool:
        """Is the pending nudge `n` overdue by more than its community's catch-up window at `now`?"""
        return n.due < now - timedelta(hours=self.settings.room(n.community).nudges.catch_up_hours)

    async def _restore_budgets(self, tx: Tx, now: datetime) -> None:
        """Ping budgets, their outcomes to come and asker cooldowns, rebuilt from the sent nudge rows."""
        kept = now - timedelta(days=self.settings.lien.retention_days)  # older rows are purged anyway
        pings = [p for p in await tx.nudges.pings_since(kept) if self.owns(p.community)]
        self._pinged.update(self.budget.load(pings, now))
        for r in await tx.nudges.reminders_since(max(kept, now - longest_cooldown(self.settings))):
            if self.owns(r.community):
                self._last_level1[(r.community, r.room, r.asker)] = r.ts

    async def reconcile(self) -> int:
        """Re-arm any pending nudge due within `RECONCILE_AHEAD` whose timer was lost; returns how many."""
        # A timer can also be lost inside the scheduler (a job dropped behind the engine's back): ask it, when it
        # can tell, which keys are armed. Keys unknown to the engine are re-armed in any case.
        listing = getattr(self.scheduler, "pending", None)
        armed = listing() if callable(listing) else None
        count = 0
        async with self.store.transaction() as tx:
            for n in await tx.nudges.due(self.clock.now() + RECONCILE_AHEAD, RECONCILE_LIMIT):
                known = n.key in self._pending and (armed is None or n.key in armed)
                if known or not self.owns(n.community):
                    continue
                kept = self._pending.setdefault(n.key, n)
                if n.community not in self.paused:  # paused ones are re-armed by `resume`
                    self.scheduler.at(max(kept.due, self.clock.now()), kept.key)
                    count += 1
        return count

    @asynccontextmanager
    async def batch(self, size: int = 2000) -> AsyncIterator[None]:
        """Group up to `size` events per transaction (replays); committed every `size` events and at the end."""
        self._batch = _Batch(self.store, size)
        try:
            yield
            await self._batch.close()
        finally:
            if self._batch is not None:
                await self._batch.abort()
            self._batch = None

    # -- entry points ------------------------------------------------------------------------------------------

    async def handle(self, event: Event) -> list[Action]:
        """Process one event: update state and rows, and return the actions to perform."""
        if event.ts - self._evicted_at >= EVICT_EVERY:
            # Memory stays bounded by open state: closed, idle questions leave the working set (rows remain).
            self.tracker.evict(event.ts)
            self._evicted_at = event.ts
        batch = self._batch
        if batch is None:
            async with self.store.transaction() as tx:
                actions = await self._dispatch(tx, event)
        else:
            # A replay's hot path: no context manager per event, one await for the batch's commit when due.
            actions = await self._dispatch(batch.current or await batch.tx(), event)
            if batch.tick():
                await batch.close()
        return [self.gate.check(a) for a in actions] if actions else actions

    async def fire(self, key: str) -> list[Action]:
        """A timer is due: run its job and return the actions to perform."""
        batch = self._batch
        if batch is None:
            async with self.store.transaction() as tx:
                return await self._fire(tx, key)
        actions = await self._fire(batch.current or await batch.tx(), key)
        if batch.tick():
            await batch.close()
        return actions

    async def _fire(self, tx: Tx, key: str) -> list[Action]:
        if key == PURGE_KEY:
            await self._purge(tx)
            return []
        jobs = self._digests(tx) if key == DIGEST_KEY else self._fire_nudge(tx, key)
        actions = [self.gate.check(a) for a in await jobs]
        for a in actions if self.deliver else ():
            if a.key is not None:
                # Decided and queued in one transaction: the runtime delivers it exactly once.
                tx.outbox.put(a.key, a.community, to_record(a), self.clock.now())
        return actions

    # -- events ------------------------------------------------------------------------------------------------

    async def _dispatch(self, tx: Tx, event: Event) -> list[Action]:
        actions = await self._route(tx, event)
        if self._strikes.changes:
            # Strikes given or cleared (a guard hit, a pardon, forget-me) are stored with the event's other rows.
            for community, member, ts in self._strikes.take():
                if ts is None:
                    await tx.strikes.clear(community, member)
                else:
                    tx.strikes.add(community, member, ts)
        return actions

    async def _route(self, tx: Tx, event: Event) -> list[Action]:
        match event:
            case Message():
                return await self._on_message(tx, event)
            case Command():
                if event.is_admin:
                    self.guard.note_moderator(event.community, event.author)
                return await self.commands.run(tx, event)
            case Reaction():
                await self._load_refs(tx, event.community, self.tracker.missing_refs(event))
                return await self._apply(tx, self.tracker.on_reaction(event))
            case Edit():
                # An edit replayed after the question was closed and evicted must not open it again.
                if self.tracker.get(event.community, event.id) is None and await tx.questions.get(
                        event.community, event.id) is not None:
                    await self._load_refs(tx, event.community, [event.id])
                return await self._apply(tx, self.tracker.on_edit(event))
            case Delete():
                await self._load_refs(tx, event.community, [event.id])
                return await self._apply(tx, self.tracker.on_delete(event))
            case MemberJoin():
                return [*self.guard.on_join(event, self.clock.now()), *self._on_join(event)]
            case MemberLeave():
                return []
        return []

    async def _on_message(self, tx: Tx, m: Message) -> list[Action]:
        if m.author in self.settings.lien.self_ids:
            return []
        flagged = self.guard.on_message(m, now=self.clock.now())
        # Spam or a flood is never an answer nor a question: linked, a spam reply would silence the question's
        # nudges and credit the spammer with help.
        tracked = await self._track_message(tx, m, track=not self.guard.last_hit)
        return [*flagged, *tracked] if flagged else tracked

    async def _track_message(self, tx: Tx, m: Message, *, track: bool = True) -> list[Action]:
        lien = self.settings.lien
        prefix = lien.command_prefix
        if not m.is_bot and m.text.startswith(prefix) and m.text[len(prefix) : len(prefix) + 1] in ("", " ", "\t"):
            return await self.commands.run(tx, parse_command(m, prefix))
        room_key = (m.community, m.room)
        latest = self._room_latest.get(room_key)
        # Out of order, or in a room this process has not seen yet: a replay after a restart may bring back a
        # message we already stored (a question closed long ago must not open again).
        if ((latest is None or m.ts < latest) and self.tracker.get(m.community, m.id) is None
                and await tx.messages.get(m.community, m.id) is not None):
            return []
        if latest is None or m.ts > latest:
            self._room_latest[room_key] = m.ts
        if track:
            await self._load_refs(tx, m.community, self.tracker.missing_refs(m))
        changes = self.tracker.on_message(m) if track else []
        tx.messages.add(MessageMeta(m.community, m.room, m.id, m.author, m.ts, m.reply_to, m.thread))
        if not m.is_bot:
            self.members.seen(m.community, m.room, m.author, m.ts)
            if m.author_name:
                # Display names stay in memory only, for the digest's opt-in thanks; never stored.
                self.names[(m.community, m.author)] = m.author_name
        return await self._apply(tx, changes)

    async def _load_refs(self, tx: Tx, community: str, ids: Iterable[str]) -> None:
        """Fetch from storage the messages and questions the tracker no longer holds in memory; a question comes
        back with all its answers (as `start` loads them): later links and thanks refer to them."""
        for mid in ids:
            meta = await tx.messages.get(community, mid)
            q = await tx.questions.get(community, mid)
            answers = await tx.answers.for_message(community, mid)
            linked = [await tx.questions.get(community, a.question) for a in answers]
            questions = [x for x in [q, *linked] if x is not None]
            for x in questions:
                if x.answers and self.tracker.get(community, x.id) is None:
                    answers += await tx.answers.for_question(community, x.id)
            self.tracker.remember([meta] if meta else [], questions, answers)

    def _on_join(self, event: MemberJoin) -> list[Action]:
        ns = self.settings.room(event.community).nudges
        if event.community in self.paused:
            return []
        if not self.join_wave.hit(event.community, event.ts, ns.join_wave_joins, ns.join_wave_minutes):
            return []
        self.paused.add(event.community)
        log.warning("join wave in %s: nudges frozen", event.community)
        rs = self.settings.room(event.community)
        return [
            Report(
                ts=self.clock.now(), community=event.community, room=rs.moderators_room, kind="guard",
                reason="join_wave",
                text=render.text("join_wave", rs.language, n=ns.join_wave_joins, minutes=ns.join_wave_minutes,
                                 prefix=self.settings.lien.command_prefix),
            )
        ]

    async def _apply(self, tx: Tx, changes: list[Change]) -> list[Action]:
        actions: list[Action] = []
        now = self.clock.now()
        for ch in changes:
            q = ch.question
            tx.questions.save(q)
            if isinstance(ch, Linked):
                tx.answers.add(ch.answer)
            for edge in edges_of(ch, now):
                tx.edges.add(edge)
                self.room_help.add(edge)
            match ch:
                case Opened():
                    await self._load_answer_times(tx, q.community, q.room)
                    self._plan(tx, q, 1)
                case Linked(answer=a):
                    if q.answered_by == a.message and q.first_answer_ts is not None:
                        self._record_delay(q)
                    self._settle(tx, q, helpers={a.author})
                case Resolved(credited=credited):
                    self._settle(tx, q, helpers=set(credited))
                case Withdrawn():
                    self._settle(tx, q, helpers=set())
        return actions

    def _record_delay(self, q: Question) -> None:
        assert q.first_answer_ts is not None
        self.answer_times.add((q.community, q.room), (q.first_answer_ts - q.asked_ts).total_seconds())

    async def _load_answer_times(self, tx: Tx, community: str, room: str) -> None:
        """Read the room's times to first answer from the rows when first needed, and now and then after."""
        days = self.settings.room(community, room).nudges.history_days
        now = self.clock.now()
        if self.answer_times.stale((community, room), now, days):
            delays = await tx.questions.first_answer_delays(community, room, now - timedelta(days=days),
                                                            self.answer_times.maxlen)
            self.answer_times.load((community, room), delays, now)

    def _settle(self, tx: Tx, q: Question, helpers: set[str]) -> None:
        """The question no longer needs nudges: cancel pending levels; tell the budget who helped after a ping."""
        for level in (1, 2, 3):
            key = nudge_key(q.community, q.id, level)
            n = self._pending.pop(key, None)
            if n is not None:
                n.state = NudgeState.CANCELLED
                tx.nudges.save(n)
                self.scheduler.cancel(key)
        pinged = self._pinged.pop((q.community, q.id), ())
        for member in pinged:
            self.budget.outcome(q.community, member, helped=member in helpers)

    # -- nudges ------------------------------------------------------------------------------------------------

    def _ladder(self, community: str, room: str) -> Ladder:
        return self.answer_times.ladder((community, room), self.settings.room(community, room).nudges)

    def _plan(self, tx: Tx, q: Question, level: int) -> None:
        rs = self.settings.room(q.community, q.room)
        if not rs.nudges.enabled or level > 3:
            return
        ladder = self._ladder(q.community, q.room)
        due = max(q.asked_ts + ladder.delay(level), self.clock.now())
        if level > 1:
            # A level that fired late (quiet hours, pause) keeps the ladder's spacing before the next one.
            due = max(due, self.clock.now() + ladder.delay(level) - ladder.delay(level - 1))
        n = Nudge(q.community, q.id, level, due)
        tx.nudges.save(n)
        self._pending[n.key] = n
        self.scheduler.at(due, n.key)

    async def _fire_nudge(self, tx: Tx, key: str) -> list[Action]:
        n = self._pending.get(key)
        if n is None or n.state != NudgeState.PENDING or not self.owns(n.community):
            return []
        q = self.tracker.get(n.community, n.question) or await tx.questions.get(n.community, n.question)
        now = self.clock.now()
        if q is None or q.state != QState.OPEN:
            del self._pending[key]
            n.state = NudgeState.CANCELLED
            tx.nudges.save(n)
            return []
        if n.community in self.paused:
            return []  # stays pending; `resume` re-arms it
        if self.guard.raid_active(n.community, now):
            self.scheduler.at(now + timedelta(minutes=5), key)  # frozen during a raid; look again later
            return []
        rs = self.settings.room(q.community, q.room)
        later = quiet_until(now, rs.timezone, rs.nudges.quiet_hours)
        if later is not None:
            n.due = later
            tx.nudges.save(n)
            self.scheduler.at(later, key)
            return []
        del self._pending[key]
        actions = await self._nudge_actions(tx, q, n, now)
        if actions:
            n.due = now  # a sent nudge's row says when it went out: budgets and cooldowns are rebuilt from it
        n.state = NudgeState.SENT if actions else NudgeState.CANCELLED
        tx.nudges.save(n)
        if actions:
            q.nudges += 1
        q.level = n.level
        if n.level < 3:
            await self._load_answer_times(tx, q.community, q.room)
            self._plan(tx, q, n.level + 1)
        else:
            self.tracker.mark_stale(q.community, q.id)
            q.state = QState.STALE
            # Nobody answered: members pinged about it let it pass (two in a row halve their rate).
            for member in self._pinged.pop((q.community, q.id), ()):
                self.budget.outcome(q.community, member, helped=False)
        tx.questions.save(q)
        return actions

    async def _nudge_actions(self, tx: Tx, q: Question, n: Nudge, now: datetime) -> list[Action]:
        rs = self.settings.room(q.community, q.room)
        lang, prefix = rs.language, self.settings.lien.command_prefix
        common = dict(ts=now, community=q.community, room=q.room, reply_to=q.id, thread=q.thread, question=q.id,
                      kind="nudge", level=n.level, key=n.key)
        if n.level == 1:
            cooldown = timedelta(days=rs.nudges.asker_cooldown_days)
            last = self._last_level1.get((q.community, q.room, q.author))
            if last is not None and now - last < cooldown:
                return []
            self._last_level1[(q.community, q.room, q.author)] = now
            return [Reply(text=render.text("nudge1", lang), **common)]
        if n.level == 2:
            chosen = await self._choose_helpers(tx, q, now)
            if not chosen:
                return [Reply(text=render.text("nudge2_nobody", lang), **common)]
            members = tuple(c.member for c in chosen)
            why = tuple(f"{c.member}: " + "; ".join(render.text(f"reason_{r}", lang, asker=q.author) for r in c.reasons)
                        for c in chosen)
            n.mentioned, n.why = members, why
            for member in members:
                self.budget.record(q.community, member, now)
                self.commands.note_why(q.community, member, q.id)
            self._pinged[(q.community, q.id)] = members
            reasons = "; ".join(
                f"{render.mention(c.member)} {render.text('reason_' + c.reasons[0], lang, asker=q.author)}"
                for c in chosen
            )
            mentions = " ".join(render.mention(m) for m in members)
            return [Reply(text=render.text("nudge2", lang, mentions=mentions, reasons=reasons, prefix=prefix),
                          mentions=members, **common)]
        prefs = await self.members.get(tx, q.community, q.author)
        if prefs is not None and prefs.dms and not prefs.optout:
            return [Dm(ts=now, community=q.community, room=None, to=q.author, question=q.id, reply_to=q.id,
                       kind="nudge", level=3, key=n.key, text=render.text("nudge3", lang))]
        return [Reply(text=render.text("nudge3", lang), **common)]

    async def _choose_helpers(self, tx: Tx, q: Question, now: datetime):
        ns = self.settings.room(q.community, q.room).nudges
        if ns.max_helpers == 0:
            return []
        volunteers = await self.members.helpers(tx, q.community, q.room)
        since = now - timedelta(days=ns.helper_active_days)
        seen = await self.members.last_seen(tx, q.community, q.room, since)
        pool = [
            p.member for p in volunteers
            if seen.get(p.member, since) > since and p.member != q.author and not p.optout
            and self.budget.allows(q.community, p.member, now, ns.pings_per_day, ns.pings_per_week)
        ]
        if not pool:
            return []
        since = now - timedelta(days=ns.half_life_days * 6)
        room = (q.community, q.room)
        if not self.room_help.loaded(room, ns.half_life_days):
            # The room's help history is read once; later edges reach the cache as the engine records them.
            self.room_help.load(room, await tx.edges.in_room(q.community, q.room, since), ns.half_life_days)
        edges = await tx.edges.between(q.community, pool, q.author, since)
        return rank_helpers(pool, q.author, q.room, edges, now, ns.half_life_days,
                            room_help=self.room_help.scores(room, pool, now),
                            limit=min(ns.max_helpers, self.gate.max_recipients))

    # -- admin helpers used by commands ------------------------------------------------------------------------

    def pause(self, community: str) -> None:
        self.paused.add(community)

    def resume(self, community: str) -> None:
        """Nudges flow again: pending ones of this community are re-armed (overdue ones fire now)."""
        self.paused.discard(community)
        now = self.clock.now()
        for n in self._pending.values():
            if n.community == community and n.state == NudgeState.PENDING:
                self.scheduler.at(max(n.due, now), n.key)

    def pending_for(self, community: str, question: str) -> list[Nudge]:
        return [n for lvl in (1, 2, 3) if (n := self._pending.get(nudge_key(community, question, lvl)))]

    def replace_settings(self, settings: Settings) -> None:
        """Adopt a new, already validated configuration."""
        self.settings = settings
        self.tracker.settings = settings
        self.gate = OutboundGate(settings.lien.max_recipients)
        self.guard.prefix = settings.lien.command_prefix
        self.answer_times.settings_changed()

    def forget(self, community: str, member: str) -> None:
        """Drop every in-memory trace of a member (after their rows were deleted)."""
        # Their open questions' nudges: the rows are gone, so the timers must go too (a firing timer would write
        # a nudge row for a deleted question).
        for q in [q for q in self.tracker.open_questions() if q.community == community and q.author == member]:
            for level in (1, 2, 3):
                if self._pending.pop(nudge_key(community, q.id, level), None) is not None:
                    self.scheduler.cancel(nudge_key(community, q.id, level))
            self._pinged.pop((community, q.id), None)
        for key, pinged in list(self._pinged.items()):
            if key[0] == community and member in pinged:
                self._pinged[key] = tuple(m for m in pinged if m != member)
        self.budget.forget(community, member)
        self.room_help.forget(community, member)
        for key in [k for k in self._last_level1 if k[0] == community and k[2] == member]:
            del self._last_level1[key]
        self.tracker.forget_member(community, member)
        self.members.forget(community, member)
        self.guard.forget(community, member)

    async def _digests(self, tx: Tx) -> list[Action]:
        """The weekly digest of every community that has a digest room; it never pings."""
        now = self.clock.now()
        start, end = digest.digest_week(now)
        out: list[Action] = []
        for community in await tx.questions.communities():
            rs = self.settings.room(community)
            if rs.digest_room is None or not self.owns(community):
                continue
            qs = await tx.questions.asked_between(community, None, start, end)
            edges = await tx.edges.during(community, None, start, end)
            members = sorted({q.author for q in qs} | {e.helper for e in edges} | {e.asker for e in edges})
            week = health.measure(qs, edges, start, end, seen=await tx.questions.first_seen(community, members))
            waiting = await tx.questions.unanswered(community, None, 500)
            thanked = []
            for member, _count in health.helpers_ranked(edges, start, end)[:20]:
                prefs = await self.members.get(tx, community, member)
                name = self.names.get((community, member))
                if prefs is not None and name:
                    thanked.append((prefs, name))
            text = digest.digest_text(week, [q for q in waiting if q.state == QState.OPEN],
                                      [q for q in waiting if q.state == QState.STALE], thanked, rs.language,
                                      prefix=self.settings.lien.command_prefix)
            out.append(Post(ts=now, community=community, room=rs.digest_room, kind="digest", text=text,
                            key=f"digest|{community}|{health.week_label(start)}"))
        self.scheduler.at(digest.next_digest_at(now, self.settings.timezone), DIGEST_KEY)
        return out

    async def _purge(self, tx: Tx) -> None:
        now = self.clock.now()
        counts = await tx.purge(now - timedelta(days=self.settings.lien.retention_days))
        counts["guard_strikes"] = await tx.strikes.prune(now - longest_strike_window(self.settings))
        log.info("retention purge: %s", counts)
        self.scheduler.at(now + timedelta(days=1), PURGE_KEY)


def log_skipped(skipped: Iterable[Nudge]) -> None:
    """Tell an operator's log which pending nudges `Engine.start` skipped as overdue."""
    for n in skipped:
        log.warning("nudge %s skipped: overdue since %s", n.key, n.due.isoformat())


def longest_strike_window(settings: Settings) -> timedelta:
    """The longest guard strike window of any community or room of `settings` (how long a strike counts)."""
    return timedelta(minutes=max(rs.guard.escalation.window_minutes for rs in settings.every_room()))


class _Batch:
    """One open transaction shared by several events, committed every `size` events."""

    def __init__(self, store: Store, size: int) -> None:
        self.store, self.size = store, size
        self._stack: AsyncExitStack | None = None
        self._tx: Tx | None = None
        self._count = 0

    @property
    def current(self) -> Tx | None:
        """The open transaction, if any."""
        return self._tx

    async def tx(self) -> Tx:
        if self._tx is None:
            self._stack = AsyncExitStack()
            self._tx = await self._stack.enter_async_context(self.store.transaction())
        return self._tx

    def tick(self) -> bool:
        """Count one unit of work; True when the batch is full and must be closed (committed)."""
        self._count += 1
        return self._count >= self.size

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._tx, self._count = self._stack, None, None, 0
            await stack.aclose()

    async def abort(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._tx = self._stack, None, None
            await stack.__aexit__(RuntimeError, RuntimeError("batch aborted"), None)

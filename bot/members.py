"""Member preferences and room activity, cached in front of the repositories.

Replays and busy rooms must not pay a database round trip per nudge: a community's preferences are read once
(only members who set one have a row, a minority) and written through, helper lists are cached per room until a
preference in the community changes, and each room's recent authors are kept from the messages the engine sees
(loaded once from storage for older history).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from types import MappingProxyType

from bot.model import MemberPrefs
from bot.ports import Tx


class MemberDirectory:
    """Who allowed what, and who was active where; the rows stay the truth."""

    def __init__(self) -> None:
        self._prefs: dict[tuple[str, str], MemberPrefs] = {}
        #: Communities whose preference rows are all in `_prefs`: a member absent there set none.
        self._loaded: set[str] = set()
        self._helpers: dict[tuple[str, str], list[MemberPrefs]] = {}
        self._active: dict[tuple[str, str], dict[str, datetime]] = {}
        self._loaded_from: dict[tuple[str, str], datetime] = {}

    async def get(self, tx: Tx, community: str, member: str) -> MemberPrefs | None:
        if community not in self._loaded:
            for prefs in await tx.members.in_community(community):
                self._prefs.setdefault((community, prefs.member), prefs)  # a save before the load is newer
            self._loaded.add(community)
        found = self._prefs.get((community, member))
        return replace(found) if found is not None else None

    def save(self, tx: Tx, prefs: MemberPrefs) -> None:
        tx.members.save(prefs)
        self._prefs[(prefs.community, prefs.member)] = replace(prefs)
        for key in [k for k in self._helpers if k[0] == prefs.community]:
            del self._helpers[key]

    async def helpers(self, tx: Tx, community: str, room: str) -> list[MemberPrefs]:
        """Members who volunteered for this room (or the community) and did not opt out."""
        key = (community, room)
        if key not in self._helpers:
            self._helpers[key] = await tx.members.helpers(community, room)
        return self._helpers[key]

    def seen(self, community: str, room: str, author: str, ts: datetime) -> None:
        """Note that `author` posted in the room at `ts`."""
        authors = self._active.get((community, room))
        if authors is None:
            authors = self._active[(community, room)] = {}
        last = authors.get(author)
        if last is None or ts > last:
            authors[author] = ts

    async def last_seen(self, tx: Tx, community: str, room: str, since: datetime) -> Mapping[str, datetime]:
        """Each author's latest message time in the room, complete at least back to `since` (read-only view)."""
        key = (community, room)
        loaded = self._loaded_from.get(key)
        if loaded is None or since < loaded:
            # Older history than this process has seen lives in storage; merge it in once.
            for author, ts in (await tx.messages.active_authors(community, room, since)).items():
                self.seen(community, room, author, ts)
            self._loaded_from[key] = since
        return MappingProxyType(self._active.get(key, {}))

    def forget(self, community: str, member: str) -> None:
        self._prefs.pop((community, member), None)
        for key, authors in self._active.items():
            if key[0] == community:
                authors.pop(member, None)
        for key in [k for k in self._helpers if k[0] == community]:
            del self._helpers[key]

"""The outbound gate: every action leaves the core through `OutboundGate.check`, whatever produced it.

lien never addresses many people. The gate neutralises mass mentions in text (`@everyone`, `@here`, `@room`,
role mentions), removes invisible and bidi control characters, and refuses any action that would mention more
members than the configured bound (hard maximum 5).
"""

from __future__ import annotations

import dataclasses
import logging
import re

from bot.actions import Action, Refuse
from bot.config import HARD_MAX_RECIPIENTS

log = logging.getLogger(__name__)

# Mass-mention forms across platforms: Discord @everyone/@here and role mentions <@&id>, Matrix @room.
# Discord matches @everyone/@here even when glued to a word ("@everyone1"), so those two need no word boundary.
_MASS = re.compile(r"@(everyone|here|(?:room|channel|all)\b)", re.IGNORECASE)
_ROLE = re.compile(r"<@&\d+>")
#: lien writes a member mention as <@ID> in neutral text; adapters turn it into the platform's mention.
_USER = re.compile(r"<@!?([^&>\s][^>\s]*)>")
# Zero-width, joiners, bidi overrides/isolates and other invisible format characters.
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\u180e]")
#: Fullwidth at sign: reads like "@" to a person, mentions no one on any platform.
_INERT_AT = "\uff20"


def neutralise(text: str, allowed: tuple[str, ...] = ()) -> str:
    """Text that mentions no one but `allowed`: mass and role mentions made inert, invisible characters removed."""
    text = _INVISIBLE.sub("", text)
    text = _MASS.sub(lambda m: _INERT_AT + m.group(1), text)
    text = _ROLE.sub(lambda m: m.group(0).replace("<@&", "<" + _INERT_AT + "&"), text)
    return _USER.sub(
        lambda m: m.group(0) if m.group(1) in allowed else m.group(0).replace("<@", "<" + _INERT_AT), text
    )


class OutboundGate:
    """Strips or refuses what lien must never send; `check` returns the action to perform (maybe a Refuse)."""

    def __init__(self, max_recipients: int) -> None:
        self.max_recipients = min(max_recipients, HARD_MAX_RECIPIENTS)

    def check(self, action: Action) -> Action:
        mentions = tuple(dict.fromkeys(action.mentions))
        if len(mentions) > self.max_recipients:
            log.warning("gate refused %s in %s: %d mentions", action.name, action.room, len(mentions))
            return Refuse(
                ts=action.ts, community=action.community, room=action.room, kind=action.kind,
                reply_to=action.reply_to, question=action.question, reason="mass_mention",
                text=f"lien does not mention more than {self.max_recipients} people at once.",
            )
        text = neutralise(action.text, mentions)
        if text == action.text and mentions == action.mentions:
            return action
        return dataclasses.replace(action, text=text, mentions=mentions)

"""`python -m tests.e2e.discord.launch URL ARGS...`: the real `lien` CLI, with discord.py pointed at the stand-in.

Everything else is production: `lien run --config F` composes Engine, Runtime, ApScheduler, SqlStore and the
DiscordAdapter in `bot.main`. Only the two discord.py class attributes `route_discord_py_to_url` names change.
"""

from __future__ import annotations

import sys

from bot.main import main
from tests.e2e.discord.stand_in import route_discord_py_to_url


def _launch(argv: list[str]) -> int:
    url, *args = argv
    with route_discord_py_to_url(url):
        return main(args)


if __name__ == "__main__":
    sys.exit(_launch(sys.argv[1:]))

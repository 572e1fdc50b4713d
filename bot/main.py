"""The composition root and CLI (`lien` / `python -m bot`): config, wiring, exit codes.

The only module of `bot/` that imports `adapters/` and `storage/`. Nothing connects or reads the environment at
import. Exit codes: 0 success, 2 bad input (file:line: field: problem), 1 internal error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bot.config import Settings
from bot.cycles import cycle_collector_paused
from bot.errors import ConfigError, InputError, LienError

if TYPE_CHECKING:
    from adapters.jsonl import EventReader

log = logging.getLogger("lien")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if verbose < 2:
        # The SDKs log every event at INFO; keep them quiet unless asked twice.
        for name in ("nio", "discord"):
            logging.getLogger(name).setLevel(logging.WARNING)


def adapter_sections() -> dict[str, type]:
    """The platform adapters' own section schemas, so `[discord]` and `[matrix]` are validated in full."""
    from adapters.discord_adapter import DiscordSettings
    from adapters.matrix_adapter import MatrixSettings

    return {"discord": DiscordSettings, "matrix": MatrixSettings}


def load_config(path: str | None, *, live: bool = False) -> Settings:
    """The validated settings from `path`, or the defaults when no file is given.

    `live` (lien run, check-config) validates the adapter sections with their own schemas and requires every
    secret to be readable; replays skip both.
    """
    if path is None:
        return Settings()
    from bot.config_file import load_settings

    if live:
        return load_settings(Path(path), os.environ, sections=adapter_sections())
    return load_settings(Path(path), os.environ, check_secrets=False)


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[object]:
    """A migrated SqlStore on `url` (the configuration's `storage.url`, or a file lien chose), disposed at exit."""
    from storage.db import check_open, make_engine
    from storage.migrate import upgrade
    from storage.repositories import SqlStore

    try:
        engine = make_engine(url)
    except InputError as exc:
        raise InputError(exc.problem, field="storage.url") from None
    try:
        await check_open(engine)
        await upgrade(engine)
        yield SqlStore(engine)
    finally:
        await engine.dispose()


def open_events(name: str, *, skip_bad: bool, on_bad: Callable[[InputError], None]) -> EventReader:
    """The events of the file `name`, or of standard input for `-` (`lien import ... | lien simulate -`)."""
    from adapters.jsonl import read_events

    if name == "-":
        return read_events("<stdin>", sys.stdin.buffer, skip_bad=skip_bad, on_bad=on_bad)
    return read_events(Path(name), skip_bad=skip_bad, on_bad=on_bad)


def refuse_overwriting(out: str | Path | None, inputs: Iterable[str | Path]) -> None:
    """An `--out` that is one of the command's input files would destroy it (truncated before it is read, or
    replaced once read): refused before anything is opened."""
    if out is None or not Path(out).exists():
        return
    for name in inputs:
        with contextlib.suppress(OSError):  # an input that cannot be read is reported when it is read
            if os.path.samefile(out, name):
                raise InputError(f"{out} is also an input file: write the output to another file", field="--out")


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


# -- simulate --------------------------------------------------------------------------------------------------


class _Progress:
    """A one-line progress counter on stderr when it is a terminal; silent otherwise."""

    def __init__(self, stream: IO[str], every: int = 20_000) -> None:
        self.stream, self.every = stream, every
        self.enabled = stream.isatty()

    def tick(self, n: int) -> None:
        if self.enabled and n % self.every == 0:
            self.stream.write(f"\r{n:,} events")
            self.stream.flush()

    def done(self, n: int) -> None:
        if self.enabled:
            self.stream.write(f"\r{n:,} events, done\n")


async def _simulate(args: argparse.Namespace) -> int:
    from adapters.jsonl import action_to_dict, dumps_line, parse_ts, question_to_dict
    from bot.simulate import Simulation

    refuse_overwriting(args.out, [args.events])
    settings = load_config(args.config)
    until = parse_ts(args.until, "", "--until") if args.until else None
    def on_bad(err: InputError) -> None:
        print(f"lien simulate: skipped {err}", file=sys.stderr)

    reader = open_events(args.events, skip_bad=args.skip_bad, on_bad=on_bad)
    out: IO[str] = open(args.out, "w", encoding="utf-8", newline="\n") if args.out else sys.stdout  # noqa: SIM115, ASYNC230
    progress = _Progress(sys.stderr)
    # The collector stays off through the question listing too: turned back on after the replay, its first full
    # collections walk the whole open state while the listing allocates (measured: two thirds of the listing's time).
    with tempfile.TemporaryDirectory(prefix="lien-sim-") as tmp, cycle_collector_paused():
        url = _sqlite_url(Path(args.db)) if args.db else _sqlite_url(Path(tmp) / "simulate.db")
        try:
            async with open_store(url) as store:
                sim = Simulation(settings, store)  # type: ignore[arg-type]
                write = out.write

                def emit(action: object) -> None:
                    write(dumps_line(action_to_dict(action)))  # type: ignore[arg-type]

                def counted() -> object:
                    for n, ev in enumerate(reader, 1):
                        progress.tick(n)
                        yield ev

                await sim.run(counted(), emit, until)  # type: ignore[arg-type]
                progress.done(reader.read)
                async for q in sim.questions():
                    write(dumps_line(question_to_dict(q)))
                sim.summary.skipped_bad = reader.skipped_bad
                sim.summary.unknown_types = reader.unknown_types
                write(dumps_line(sim.summary.as_dict()))
        finally:
            reader.close()
            if out is not sys.stdout:
                out.close()
    return 0


# -- run (live) -----------------------------------------------------------------------------------------------


def build_adapters(settings: Settings, store: object, clock: object, env: dict[str, str]) -> list[object]:
    """The platform adapters the configuration asks for, with their secrets read from env or files."""
    from bot.config_file import resolve_secret

    adapters: list[object] = []
    if settings.matrix is not None:
        from adapters.matrix_adapter import MatrixAdapter, MatrixSettings

        ms = MatrixSettings.from_section(settings.matrix)

        async def kv_get(key: str) -> str | None:
            async with store.transaction() as tx:  # type: ignore[attr-defined]
                return await tx.kv.get(key)

        async def kv_set(key: str, value: str) -> None:
            async with store.transaction() as tx:  # type: ignore[attr-defined]
                tx.kv.set(key, value)

        adapters.append(MatrixAdapter.from_settings(
            ms, kv_get=kv_get, kv_set=kv_set,
            access_token=resolve_secret(settings.matrix, "access_token", env, where="matrix"),
            password=resolve_secret(settings.matrix, "password", env, where="matrix"),
            bot_ids=settings.lien.bot_ids, default_prefix=settings.lien.command_prefix,
            clock=clock,  # type: ignore[arg-type]
        ))
    if settings.discord is not None:
        from adapters.discord_adapter import DiscordAdapter, DiscordSettings

        ds = DiscordSettings.from_section(settings.discord)
        token = resolve_secret(settings.discord, "token", env, where="discord") or env.get(ds.token_env)
        if not token:
            raise ConfigError(f"discord.token_env: environment variable {ds.token_env} is not set")

        async def last_processed(community: str, room: str) -> str | None:
            async with store.transaction() as tx:  # type: ignore[attr-defined]
                meta = await tx.messages.last_in_room(community, room)
            return meta.id if meta else None

        adapters.append(DiscordAdapter(token, clock=clock, settings=ds,  # type: ignore[arg-type]
                                       prefix=settings.lien.command_prefix, bot_ids=settings.lien.bot_ids,
                                       last_processed=last_processed))
    if settings.bridge is not None:
        from adapters.jsonl_bridge import BridgeSettings, JsonlBridge

        adapters.append(JsonlBridge.from_settings(BridgeSettings.from_section(settings.bridge)))
    if not adapters:
        raise ConfigError("the configuration has no [discord], [matrix] or [bridge] section: nothing to run")
    return adapters


async def _run(args: argparse.Namespace) -> int:
    import signal

    from adapters.scheduler import ApScheduler
    from bot.clock import SystemClock
    from bot.engine import Engine, log_skipped
    from bot.runtime import Runtime

    env = dict(os.environ)
    settings = load_config(args.config, live=True)
    clock = SystemClock()
    async with open_store(settings.storage.resolved_url(env)) as store:
        holder: list[Runtime] = []

        async def on_due(key: str) -> None:
            await holder[0].on_timer(key)

        scheduler = ApScheduler(on_due, clock)
        adapters = build_adapters(settings, store, clock, env)
        owners = [a for a in adapters if hasattr(a, "owns")]
        engine = Engine(settings, store, clock, scheduler,  # type: ignore[arg-type]
                        reload_settings=lambda: load_config(args.config, live=True),
                        # Sharded Discord: only this process's guilds get timers (non-Discord ids are owned).
                        owns=lambda community: all(a.owns(community) for a in owners))
        runtime = Runtime(engine, adapters, clock)  # type: ignore[arg-type]
        holder.append(runtime)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log_skipped(await engine.start())

        async def go_live() -> None:
            for adapter in adapters:
                await adapter.start(runtime.handler_for(adapter))  # type: ignore[attr-defined]
            # Timers start once the adapters have caught up: an answer posted while lien was down cancels its
            # nudge before the overdue timer fires.
            # Left-overs of the previous run go first, so a level-2 nudge never overtakes its unsent level 1.
            delivered = await runtime.deliver_unsent()
            scheduler.start()
            scheduler.every(300, "reconcile")
            log.warning("lien is running with %d adapter(s); %d undelivered action(s) resumed",
                        len(adapters), delivered)

        starting = asyncio.ensure_future(go_live())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()  # an adapter that could not start (refused token...) ends the run here
                await stopping
            else:
                # A stop asked for while a platform was still being reached (a homeserver down, a gateway not
                # ready): stop now rather than after a connection that may never come.
                log.warning("stopping before lien was fully started")
                starting.cancel()
                await asyncio.wait({starting})
        finally:
            stopping.cancel()
            scheduler.shutdown()
            await runtime.stop()
            for adapter in adapters:
                await adapter.stop()  # type: ignore[attr-defined]
    return 0


# -- other commands --------------------------------------------------------------------------------------------


async def _report(args: argparse.Namespace) -> int:
    from adapters.report_html import NameBook, ReportOptions, new_salt, write_report
    from bot.clock import SystemClock
    from storage import export
    from storage.db import check_open, make_engine, sqlite_file
    from storage.migrate import require_current

    refuse_overwriting(args.out, [args.events] if args.events else [])
    now = SystemClock().now()
    names = NameBook()
    salt = args.salt or os.environ.get("LIEN_REPORT_SALT")
    if args.db:
        # A plain path is a SQLite file, as `lien simulate --db` and `lien demo --db` take it.
        url = args.db if "://" in args.db else _sqlite_url(Path(args.db))
        path = sqlite_file(url)
        if path is not None and not path.is_file():
            # SQLite would create an empty file there: a report reads a database, it never makes one.
            raise InputError(f"no database at {path}", field="--db")
        engine = make_engine(url)
        try:
            await check_open(engine)
            await require_current(engine)
            questions, edges = await export.load_history(engine, args.community)
            salt = salt or await export.report_salt(engine)  # kept in the database: stable pseudonyms
        finally:
            await engine.dispose()
        source, as_of = "lien's database", now
    else:
        def on_bad(err: InputError) -> None:
            print(f"lien report: skipped {err}", file=sys.stderr)

        reader = open_events(args.events, skip_bad=args.skip_bad, on_bad=on_bad)
        try:
            questions, edges = await export.replay_history(names.watch(reader), load_config(args.config))
        finally:
            reader.close()
        if args.community:
            questions = [q for q in questions if q.community == args.community]
            edges = [e for e in edges if e.community == args.community]
        source, as_of = ("standard input" if args.events == "-" else Path(args.events).name), None
    options = ReportOptions(salt=salt or new_salt(), generated=now, source=source, names=names.names,
                            show_names=args.names, as_of=as_of)
    with cycle_collector_paused():  # the page's many small objects would make it walk the whole history again
        size = write_report(Path(args.out), questions, edges, options)
    print(f"wrote {args.out}: {size / 1024:,.0f} KiB, {len(questions):,} questions, {len(edges):,} help edges",
          file=sys.stderr)
    return 0


async def _migrate(args: argparse.Namespace) -> int:
    settings = load_config(args.config)
    url = settings.storage.resolved_url(dict(os.environ))
    async with open_store(url):
        pass
    print("database is at the latest schema")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from bot.config_file import check_config

    code, message = check_config(Path(args.file), os.environ, sections=adapter_sections())
    print(message, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _eval(args: argparse.Namespace) -> int:
    from bot.evaluation import main as eval_main

    return eval_main(["--data", args.data])


async def _demo(args: argparse.Namespace) -> int:
    from adapters.console import run_demo

    # The embedded default: the real defaults, except quiet hours, so that the demo shows nudges at any hour.
    settings = load_config(args.config) if args.config else Settings.model_validate(
        {"nudges": {"quiet_hours": {"enabled": False}}}
    )
    # The script is read before the database is opened: one that cannot be read leaves no trace.
    script = None
    if args.script:
        script = (args.script, await asyncio.to_thread(Path(args.script).read_text, encoding="utf-8"))
    db = Path(args.db)
    async with open_store(_sqlite_url(db)) as store:
        return await run_demo(settings, store, script=script, speed=args.speed, interactive=args.interactive,
                              out=sys.stdout)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lien")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


#: The fastest demo: a virtual day per real second (faster, virtual time would soon leave the calendar).
MAX_SPEED = 86_400.0


def _speed(text: str) -> float:
    """`--speed`: virtual seconds per real second, above 0 and up to `MAX_SPEED`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_SPEED:,.0f} (got {text!r})")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lien", description="lien: no question left unanswered.")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (repeat for debug)")
    p.add_argument("--version", action="version", version=f"lien {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="replay an events JSONL file on virtual time, print actions and questions")
    s.add_argument("events", help="events file (JSON Lines, docs/events.md); - reads standard input")
    s.add_argument("--config", help="TOML configuration file")
    s.add_argument("--until", help="keep firing timers until this ISO 8601 time (default: last event + 7 days)")
    s.add_argument("--out", help="write output here instead of standard output")
    s.add_argument("--skip-bad", action="store_true", help="report bad lines and go on (counted in the summary)")
    s.add_argument("--db", help="keep the replay's SQLite database at this path (default: a temporary file)")

    d = sub.add_parser("demo", help="a local chat with lien in the terminal (built-in scenario, then interactive)")
    d.add_argument("--script", help="run this script non-interactively instead of the built-in scenario")
    d.add_argument("--speed", type=_speed, default=600.0, help="virtual seconds per real second (default 600)")
    d.add_argument("--db", default="lien-demo.db", help="SQLite file for the demo's state (default lien-demo.db)")
    d.add_argument("--config", help="TOML configuration file")
    d.add_argument("--interactive", action=argparse.BooleanOptionalAction, default=None,
                   help="hand over to interactive mode after the scenario (default: when on a terminal)")

    r = sub.add_parser("run", help="run lien live on the platforms the configuration names")
    r.add_argument("--config", required=True, help="TOML configuration file")

    m = sub.add_parser("migrate", help="apply database migrations")
    m.add_argument("--config", help="TOML configuration file")

    c = sub.add_parser("check-config", help="validate a configuration file")
    c.add_argument("file")

    im = sub.add_parser("import", help="convert chat exports into an events file (JSON Lines) for `lien simulate`")
    kinds = im.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, what in (("discord", "DiscordChatExporter JSON exports"), ("matrix", 'Element "Export chat" JSON files')):
        k = kinds.add_parser(kind, help=f"import {what}")
        k.add_argument("files", nargs="+", type=Path, metavar="FILE", help="export files, merged in time order")
        k.add_argument("--out", type=Path, help="write the events here (default: standard output)")
        k.add_argument("--skip-bad", action="store_true", help="report malformed records and go on (counted)")
        k.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
        if kind == "matrix":
            k.add_argument("--community", help="community id (default: the server name in the room id)")

    rp = sub.add_parser("report", help="write a self-contained HTML page of community health and reciprocity")
    source = rp.add_mutually_exclusive_group(required=True)
    source.add_argument("events", nargs="?", help="events file to replay (JSON Lines, docs/events.md); - for stdin")
    source.add_argument("--db", metavar="URL|FILE",
                        help="read lien's database instead: a URL (sqlite:///lien.db, postgresql://...) or a file")
    rp.add_argument("--out", required=True, help="the HTML file to write")
    rp.add_argument("--names", action="store_true", help="show display names where known (default: pseudonyms)")
    rp.add_argument("--community", help="only this community (default: every one, a section each)")
    rp.add_argument("--config", help="TOML configuration file (for the replay of an events file)")
    rp.add_argument("--salt", help="salt of the pseudonyms (default: $LIEN_REPORT_SALT, else the database's own, "
                                   "else random: stable pseudonyms need a kept salt)")
    rp.add_argument("--skip-bad", action="store_true", help="report bad lines and go on")

    e = sub.add_parser("eval", help="measure question detection and answer linking on labelled chat logs")
    e.add_argument("--data", default="../shared/data/chat-eval", help="folder of datasets (events + gold)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lien` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        if args.command == "simulate":
            return asyncio.run(_simulate(args))
        if args.command == "demo":
            return asyncio.run(_demo(args))
        if args.command == "run":
            return asyncio.run(_run(args))
        if args.command == "migrate":
            return asyncio.run(_migrate(args))
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "import":
            from adapters.importing import run_import

            refuse_overwriting(args.out, args.files)
            return run_import(args.kind, args.files, args.out, args.skip_bad, not args.no_progress,
                              community=getattr(args, "community", None))
        if args.command == "report":
            return asyncio.run(_report(args))
        if args.command == "eval":
            return _eval(args)
    except (InputError, ConfigError) as exc:
        print(f"lien {args.command}: {exc}", file=sys.stderr)
        return 2
    except LienError as exc:
        print(f"lien {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if isinstance(exc, OSError) and exc.filename is not None:
            # A file named on the command line (or in the configuration) that cannot be read or written.
            print(f"lien {args.command}: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        log.exception("internal error in lien %s", args.command)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())

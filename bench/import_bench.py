"""Benchmark of `lien import discord`: throughput and peak memory on a generated DiscordChatExporter export.

Generates an export of N messages (default 1,000,000) laid out as DiscordChatExporter writes it (indented, authors
with roles and avatars, replies with references, mentions, reactions with their users, bots, joins, attachments),
then imports it in a child process and prints messages/s (wall and CPU) and the child's peak RSS. The machine's load
average is printed with the figures: on a shared machine the wall-clock rate is only as good as the CPU it gets,
messages per CPU second tell the importer's own speed. Targets: >= 100,000 messages/s, <= 500 MB. Exits 1 when a
target is missed.

Run: `.venv/bin/python -m bench.import_bench [--messages N] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from json.encoder import encode_basestring
from pathlib import Path

from bench.generate import ANSWERS, CHATTER, QUESTIONS, THANKS
from bench.memory import peak_rss_mb

TARGET_RATE = 100_000
TARGET_RSS_MB = 500
GUILD = "1180000000000000001"
CHANNEL = "1180000000000000200"
MEMBERS = 2000
BOT = "1180000000000009999"
_ROLES = '[\n        {\n          "id": "1180000000000000010",\n          "name": "Helper",\n' \
         '          "color": "#3498DB",\n          "position": 3\n        }\n      ]'


def _user(uid: str, name: str, *, bot: bool = False, roles: bool = True, indent: str = "      ") -> str:
    role_list = _ROLES if roles and int(uid) % 7 == 0 else "[]"
    inner = indent + "  "
    lines = [f'"id": "{uid}"', f'"name": "{name}"', '"discriminator": "0000"', f'"nickname": "{name.title()}"',
             '"color": null', f'"isBot": {"true" if bot else "false"}']
    if roles:
        lines.append(f'"roles": {role_list}')
    lines.append(f'"avatarUrl": "https://cdn.discordapp.com/avatars/{uid}/0f1e2d3c.png?size=512"')
    return "{\n" + ",\n".join(inner + line for line in lines) + "\n" + indent + "}"


def _message(mid: int, ts: str, kind: str, content: str, author: str, *, bot: bool = False,
             reply_to: int | None = None, mentions: tuple[str, ...] = (), reactors: tuple[str, ...] = (),
             attachment: bool = False) -> str:
    name = "helperbot" if bot else f"member{int(author) % MEMBERS}"
    attachments = "[]"
    if attachment:
        attachments = (f'[\n        {{\n          "id": "{mid + 1}",\n          "url": "https://cdn.discordapp.com/'
                       f'attachments/{CHANNEL}/{mid + 1}/log.txt",\n          "fileName": "log.txt",\n'
                       '          "fileSizeBytes": 2048\n        }\n      ]')
    reactions = "[]"
    if reactors:
        users = ",\n".join("          " + _user(u, f"member{int(u) % MEMBERS}", roles=False, indent="          ")
                           for u in reactors)
        reactions = ('[\n        {\n          "emoji": {\n            "id": "",\n            "name": "👍",\n'
                     '            "code": "thumbsup",\n            "isAnimated": false,\n            "imageUrl": '
                     '"https://cdn.jsdelivr.net/gh/twitter/twemoji@latest/assets/svg/1f44d.svg"\n          },\n'
                     f'          "count": {len(reactors)},\n          "users": [\n{users}\n          ]\n        }}\n'
                     '      ]')
    mention_list = "[]"
    if mentions:
        mention_list = "[\n" + ",\n".join("        " + _user(u, f"member{int(u) % MEMBERS}", indent="        ")
                                          for u in mentions) + "\n      ]"
    reference = ""
    if reply_to is not None:
        reference = (f',\n      "reference": {{\n        "messageId": "{reply_to}",\n        "channelId": '
                     f'"{CHANNEL}",\n        "guildId": "{GUILD}"\n      }}')
    return (
        f'    {{\n      "id": "{mid}",\n      "type": "{kind}",\n      "timestamp": "{ts}",\n'
        f'      "timestampEdited": null,\n      "callEndedTimestamp": null,\n      "isPinned": false,\n'
        f'      "content": {encode_basestring(content)},\n      "author": {_user(author, name, bot=bot)},\n'
        f'      "attachments": {attachments},\n      "embeds": [],\n      "stickers": [],\n'
        f'      "reactions": {reactions},\n      "mentions": {mention_list}{reference},\n'
        f'      "inlineEmojis": []\n    }}'
    )


def generate(path: Path, n: int, seed: int = 11) -> None:
    """Write an export of `n` messages to `path`, in time order (as the exporter writes them)."""
    rnd = random.Random(seed)
    base = 1_180_000_000_000_100_000
    t = 1_767_600_000.0  # 2026-01-05T08:00:00Z
    pending: list[tuple[int, str]] = []
    with path.open("w", encoding="utf-8") as f:
        f.write('{\n  "guild": {\n    "id": "' + GUILD + '",\n    "name": "Bench Community",\n    "iconUrl": null\n'
                '  },\n  "channel": {\n    "id": "' + CHANNEL + '",\n    "type": "GuildTextChat",\n'
                '    "categoryId": "1180000000000000050",\n    "category": "Support",\n    "name": "help",\n'
                '    "topic": "Ask anything"\n  },\n  "dateRange": {\n    "after": null,\n    "before": null\n  },\n'
                '  "exportedAt": "2026-03-09T18:00:00.000+01:00",\n  "messages": [\n')
        batch: list[str] = []
        separator = ""
        for i in range(n):
            t += rnd.uniform(0.2, 4.0)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}+00:00"
            mid = base + i * 4
            author = str(1_180_000_000_000_010_000 + rnd.randrange(MEMBERS))
            roll = rnd.random()
            if roll < 0.01:
                batch.append(_message(mid, stamp, "GuildMemberJoin", "Joined the server.", author))
                continue
            if roll < 0.03:
                batch.append(_message(mid, stamp, "Default", "Reminder: read the FAQ.", BOT, bot=True))
                continue
            if roll < 0.33:
                text = rnd.choice(QUESTIONS)
                pending.append((mid, author))
                pending = pending[-30:]
                batch.append(_message(mid, stamp, "Default", text, author, attachment=rnd.random() < 0.05))
            elif roll < 0.60 and pending:
                qid, asker = pending.pop(rnd.randrange(len(pending)))
                reactors = (asker,) if rnd.random() < 0.4 else ()
                batch.append(_message(mid, stamp, "Reply", f"<@{asker}> {rnd.choice(ANSWERS)}", author,
                                      reply_to=qid, mentions=(asker,), reactors=reactors))
            elif roll < 0.65 and pending:
                qid, asker = pending[-1]
                batch.append(_message(mid, stamp, "Reply", rnd.choice(THANKS), asker, reply_to=qid))
            else:
                batch.append(_message(mid, stamp, "Default", rnd.choice(CHATTER), author))
            if len(batch) >= 5000:
                f.write(separator + ",\n".join(batch))
                separator, batch = ",\n", []
        if batch:
            f.write(separator + ",\n".join(batch))
        f.write("\n")
        f.write(f'  ],\n  "messageCount": {n}\n}}\n')


def _child(export: Path, out: Path) -> None:
    """Import `export` into `out`; print wall and CPU seconds, peak RSS (VmHWM) and the summary as JSON."""
    import io

    from adapters.importing import run_import

    err = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    code = run_import("discord", [export], out, False, False, stderr=err)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_mb = peak_rss_mb()
    # The floor on this machine, now: the same file only decoded by the streaming reader.
    from adapters.importing import ExportReader

    decode_cpu = time.process_time()
    for _ in ExportReader(export).records(lambda header: None, lambda error, reason: None):
        pass
    decode_cpu = time.process_time() - decode_cpu
    print(json.dumps({"code": code, "wall": wall, "cpu": cpu, "decode_cpu": decode_cpu, "peak_mb": peak_mb,
                      "summary": err.getvalue()}))


def main(argv: list[str] | None = None) -> int:
    """Generate, import, print the figures; 1 when a target is missed."""
    ap = argparse.ArgumentParser(prog="python -m bench.import_bench", description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=1_000_000, help="messages in the generated export")
    ap.add_argument("--keep", type=Path, help="generate into this directory and keep the files")
    ap.add_argument("--child", nargs=2, type=Path, metavar=("EXPORT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="lien-import-bench-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        export, out = workdir / "export.json", workdir / "events.jsonl"
        start = time.perf_counter()
        generate(export, args.messages)
        size_mb = export.stat().st_size / 2**20
        print(f"generated {args.messages:,} messages ({size_mb:,.0f} MB) in {time.perf_counter() - start:.1f} s")
        load_before = os.getloadavg()[0]
        done = subprocess.run([sys.executable, "-m", "bench.import_bench", "--child", str(export), str(out)],
                              check=True, capture_output=True, text=True)
        result = json.loads(done.stdout)
        load_after = os.getloadavg()[0]
    if result["code"] != 0:
        print(result["summary"], file=sys.stderr)
        return 1
    rate, cpu_rate = args.messages / result["wall"], args.messages / result["cpu"]
    print(f"import: {result['wall']:.1f} s wall, {result['cpu']:.1f} s CPU = {rate:,.0f} messages/s wall, "
          f"{cpu_rate:,.0f} messages/s CPU (target >= {TARGET_RATE:,})")
    print(f"machine load average (1 min) before/after the import: {load_before:.2f}/{load_after:.2f} "
          f"on {os.cpu_count()} CPUs")
    decode_rate = args.messages / result["decode_cpu"]
    print(f"decoding alone (streaming reader: orjson batches), same run: {decode_rate:,.0f} messages/s CPU; "
          f"import/decode = {cpu_rate / decode_rate:.2f}")
    print(f"peak RSS of the import: {result['peak_mb']:.0f} MB (target <= {TARGET_RSS_MB} MB)")
    print(result["summary"].strip().splitlines()[-1])
    ok = rate >= TARGET_RATE and result["peak_mb"] <= TARGET_RSS_MB
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

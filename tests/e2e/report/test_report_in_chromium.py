"""The report page in a real headless Chromium: no errors, every chart drawn, the help network laid out, offline,
readable on a laptop and on a phone. A screenshot of each is left in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.report_html import NameBook, ReportOptions, write_report
from bot.config import Settings
from bot.events import Message
from storage.export import replay_history
from tests.e2e.report.chromium import Browser, Page

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

GUILD = "112233445566778899"
ROOMS = ("223344556677889900", "334455667788990011", "445566778899001122")
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
QUESTIONS = ("How do I set up the proxy for the build?", "Why does the deploy time out?",
             "Is there a way to run the tests in parallel?", "Comment active-t-on les logs ?")
ANSWERS = ("Set the variable first.", "Try the verbose flag.", "Upgrade to the latest release.")


def events(weeks: int = 5, seed: int = 3) -> list[Message]:
    """A few weeks of a small Discord guild: questions, replies (some between the same two people), thanks."""
    rnd = random.Random(seed)
    people = [str(900000000000000000 + i) for i in range(40)]
    out: list[Message] = []
    t = START
    n = 0
    end = START + timedelta(weeks=weeks)
    while t < end:
        t += timedelta(minutes=rnd.randint(20, 180))
        room = rnd.choice(ROOMS)
        asker = rnd.choice(people[: 12 + (t - START).days])  # newcomers arrive over time
        n += 1
        qid = str(500000000000000000 + n * 10)
        out.append(Message(GUILD, room, qid, t, asker, rnd.choice(QUESTIONS), author_name=f"Person {asker[-2:]}"))
        if rnd.random() < 0.75:
            helper = rnd.choice([p for p in people[:15] if p != asker])
            t2 = t + timedelta(minutes=rnd.choice((2, 10, 45, 200, 900, 3000)))
            out.append(Message(GUILD, room, str(int(qid) + 1), t2, helper, rnd.choice(ANSWERS), reply_to=qid,
                               author_name=f"Person {helper[-2:]}"))
            if rnd.random() < 0.4:
                out.append(Message(GUILD, room, str(int(qid) + 2), t2 + timedelta(minutes=3), asker, "thanks!",
                                   reply_to=str(int(qid) + 1)))
    out.sort(key=lambda m: m.ts)
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.html"
    names = NameBook()
    questions, edges = asyncio.run(replay_history(names.watch(events()), Settings()))
    assert questions and edges
    write_report(path, questions, edges, ReportOptions(salt="test-salt", generated=datetime.now(UTC),
                                                       source="test events", names=names.names))
    return path


async def open_report(page: Page, path: Path, width: int, height: int, mobile: bool = False) -> None:
    await page.open(path.as_uri(), width, height, mobile=mobile)
    async with asyncio.timeout(30):
        while not await page.evaluate("document.documentElement.getAttribute('data-ready') === '1'"):
            assert not page.errors.lines, page.errors.lines
            await asyncio.sleep(0.1)


CHART_STATE = """
(() => Array.from(document.querySelectorAll('canvas[id]')).map(canvas => {
  const chart = Chart.getChart(canvas);
  const ctx = canvas.getContext('2d');
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) painted++; }
  return {
    id: canvas.id, chart: !!chart, width: canvas.width, height: canvas.height, painted,
    points: chart ? chart.data.datasets.reduce((n, d) => n + d.data.filter(v => v !== null).length, 0) : 0,
    drawn: chart ? chart.data.datasets.every((d, i) => chart.getDatasetMeta(i).data.length === d.data.length) : false,
  };
}))()
"""

GRAPH_STATE = """
(() => {
  const data = JSON.parse(document.getElementById('lien-data').textContent).communities[0].graph;
  const cy = window.lienReport.graphs[0];
  const box = cy.elements().boundingBox();
  return {
    nodes: cy.nodes().length, edges: cy.edges().length, expectedNodes: data.nodes.length,
    reciprocal: cy.edges('[r = 1]').length, expectedReciprocal: data.edges.filter(e => e.r).length,
    width: box.w, height: box.h,
    spread: new Set(cy.nodes().map(n => Math.round(n.position('x')) + ',' + Math.round(n.position('y')))).size,
  };
})()
"""


async def test_report_renders_in_chromium_without_errors(chromium: str, report: Path, tmp_path: Path) -> None:
    async with Browser.start(chromium) as browser:
        page = await browser.new_page()
        await open_report(page, report, 1280, 900)

        charts: list[dict[str, Any]] = await page.evaluate(CHART_STATE)
        assert {c["id"] for c in charts} == {f"c0-{k}" for k in
                                             ("questions", "latency", "reciprocity", "load", "members", "rooms")}
        for c in charts:
            assert c["chart"] and c["drawn"], c
            assert c["points"] > 0, c
            # Axes, bars and lines cover far more than 1% of a drawn chart.
            assert c["painted"] > 0.01 * c["width"] * c["height"], c

        graph = await page.evaluate(GRAPH_STATE)
        assert graph["nodes"] == graph["expectedNodes"] > 5
        assert graph["edges"] > 0 and graph["reciprocal"] == graph["expectedReciprocal"] > 0
        assert graph["width"] > 0 and graph["height"] > 0 and graph["spread"] == graph["nodes"]  # laid out

        # Tapping a member explains their part in plain words.
        await page.evaluate("void window.lienReport.graphs[0].nodes()[0].emit('tap')")
        info = await page.evaluate("document.getElementById('c0-graph-info').textContent")
        assert "gave" in info and "received help from" in info

        assert await page.evaluate("performance.getEntriesByType('resource').length") == 0  # nothing fetched
        assert await page.evaluate("document.querySelectorAll('a[href^=\"https://discord.com/channels/\"]').length")
        (tmp_path / "report-desktop.png").write_bytes(png := await page.screenshot())
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
        assert page.errors.lines == []
        await page.close()


async def test_report_fits_a_phone_screen(chromium: str, report: Path, tmp_path: Path) -> None:
    async with Browser.start(chromium) as browser:
        page = await browser.new_page()
        await open_report(page, report, 390, 844, mobile=True)
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1  # no sideways scrolling of the page (wide tables scroll inside their box)
        widths = await page.evaluate(
            "Array.from(document.querySelectorAll('.panel, .card')).map(e => e.getBoundingClientRect().right)")
        assert widths and max(widths) <= 390
        assert await page.evaluate("window.lienReport.graphs[0].nodes().length") > 0
        (tmp_path / "report-phone.png").write_bytes(png := await page.screenshot())
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert page.errors.lines == []
        await page.close()


async def test_a_broken_page_is_caught(chromium: str, tmp_path: Path) -> None:
    """The error capture itself works: a page that throws and logs an error is reported."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!doctype html><script>console.error('boom'); undefinedFunction();</script>", encoding="utf-8")
    async with Browser.start(chromium) as browser:
        page = await browser.new_page()
        await page.open(bad.as_uri(), 800, 600)
        async with asyncio.timeout(10):
            await page.errors.wait_for(2)
        assert any("boom" in line for line in page.errors.lines)
        assert any("undefinedFunction" in line for line in page.errors.lines)
        await page.close()

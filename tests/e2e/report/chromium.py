"""A real headless Chromium driven over the Chrome DevTools Protocol (CDP) websocket, for testing report pages.

`Browser.start()` launches Debian's `chromium` on a fresh profile with the remote debugging port on loopback;
`Page` sends CDP commands and records what the page reports as errors: console errors, uncaught exceptions and
browser log errors (CSP violations, failed loads).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--mute-audio", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
)
#: Where Debian puts the browser; `CHROMIUM` in the environment overrides it.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The Chromium executable to use, or None when none is installed."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageErrors:
    """Errors the page reported, each as a short readable line."""

    lines: list[str] = field(default_factory=list)
    #: Set whenever a line is added.
    added: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int) -> None:
        """Return once at least `count` errors were reported (wrap in a timeout)."""
        while len(self.lines) < count:
            self.added.clear()
            await self.added.wait()

    def note(self, method: str, params: dict[str, Any]) -> None:
        before = len(self.lines)
        self._note(method, params)
        if len(self.lines) > before:
            self.added.set()

    def _note(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.lines.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            desc = details.get("exception", {}).get("description") or details.get("text", "")
            self.lines.append(f"exception: {desc}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.lines.append(f"log.{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())


class Page:
    """One page target: `send` a CDP command and get its result; events are recorded and can be awaited."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.errors = PageErrors()
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, asyncio.Event] = {}
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._waiting.pop(data["id"], None)
                if fut is not None and not fut.done():
                    if "error" in data:
                        fut.set_exception(RuntimeError(f"CDP error: {data['error']}"))
                    else:
                        fut.set_result(data.get("result", {}))
            else:
                method, params = data.get("method", ""), data.get("params", {})
                self.errors.note(method, params)
                self._events.setdefault(method, asyncio.Event()).set()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Run one CDP command and return its result (raises on a protocol error)."""
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = fut
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        return await asyncio.wait_for(fut, 30)

    def expect(self, method: str) -> asyncio.Event:
        """An event set when `method` next arrives (call before triggering it)."""
        ev = self._events[method] = asyncio.Event()
        return ev

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression (promises awaited); raises if it throws."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluation failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def open(self, url: str, width: int, height: int, mobile: bool = False) -> None:
        """Navigate to `url` at the given viewport and wait for the load event."""
        await self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=2 if mobile else 1, mobile=mobile)
        loaded = self.expect("Page.loadEventFired")
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded.wait(), 60)

    async def screenshot(self, full_page: bool = True) -> bytes:
        """A PNG of the page (the whole page unless `full_page` is false)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = await self.send("Page.captureScreenshot", **params)
        return base64.b64decode(shot["data"])

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.ws.close()


def _port(profile: str) -> int | None:
    """The DevTools port Chromium wrote into its profile, once it listens."""
    try:
        with open(os.path.join(profile, "DevToolsActivePort"), encoding="ascii") as f:
            first = f.readline().strip()
    except FileNotFoundError:
        return None
    return int(first) if first else None


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Terminate the browser's process group, killing it if it does not exit within 10 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), 10)
            break
        except TimeoutError:
            continue
    # Helpers of the group may outlive the main process by a moment; give them the same signal.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class Browser:
    """A headless Chromium process on a throwaway profile; use `async with Browser.start(exe) as b`."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port
        self.session = aiohttp.ClientSession()

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, executable: str, within: float = 30.0) -> AsyncIterator[Browser]:
        """Launch Chromium and yield it once its DevTools endpoint listens; stop it and drop the profile after."""
        with tempfile.TemporaryDirectory(prefix="lien-chromium-", ignore_cleanup_errors=True) as profile:
            # Its own process group: stopping it stops its renderer and helper processes too.
            proc = await asyncio.create_subprocess_exec(
                executable, *FLAGS, f"--user-data-dir={profile}", "about:blank",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
            )
            browser: Browser | None = None
            try:
                async with asyncio.timeout(within):
                    while (port := _port(profile)) is None:
                        if proc.returncode is not None:
                            raise RuntimeError(f"chromium exited with {proc.returncode} before listening")
                        await asyncio.sleep(0.05)
                browser = cls(proc, port)
                yield browser
            finally:
                if browser is not None:
                    await browser.session.close()
                await _stop(proc)

    async def new_page(self) -> Page:
        """A fresh tab with the Runtime, Log and Page domains on."""
        base = f"http://127.0.0.1:{self.port}"
        async with self.session.put(f"{base}/json/new?about:blank") as resp:
            target = await resp.json()
        ws = await self.session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            await page.send(domain)
        return page

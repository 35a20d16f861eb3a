"""Headless Chromium driven over the Chrome DevTools Protocol (a websocket), for page tests.

    with Browser.launch(tmp_path) as browser:       # None from find_chromium(): skip
        page = browser.open("file:///.../report.html", width=1280, height=900)
        page.evaluate("document.title")
        page.screenshot(tmp_path / "shot.png")
        page.requests, page.console_errors

Every request the page makes is logged (Network.requestWillBeSent), and console errors,
uncaught exceptions and browser log errors are collected.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import websocket

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    """The Chromium executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    """A DevTools command failed or timed out."""


class Browser:
    """One Chromium process with a fresh profile and a DevTools websocket."""

    def __init__(self, process: subprocess.Popen[bytes], ws_url: str, profile: Path) -> None:
        self.process = process
        self.profile = profile
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self._next = 0
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []

    @classmethod
    def launch(cls, workdir: Path) -> Browser:
        """Start Chromium (see FLAGS) with a new profile under `workdir`."""
        executable = find_chromium()
        if executable is None:
            raise CdpError("chromium not found")
        profile = Path(tempfile.mkdtemp(prefix="profile-", dir=workdir))
        process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert process.stderr is not None
        deadline = time.monotonic() + 30
        seen = b""
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line and process.poll() is not None:
                break
            seen += line
            match = re.search(rb"DevTools listening on (ws://\S+)", line)
            if match:
                threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
                return cls(process, match.group(1).decode(), profile)
        process.kill()
        process.wait()
        raise CdpError("chromium did not start: " + seen.decode(errors="replace")[-2000:])

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the socket, stop the process and remove the profile."""
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its answer (events seen meanwhile are kept)."""
        with self._lock:
            self._next += 1
            ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            data = json.loads(self.ws.recv())
            if data.get("id") == ident:
                if "error" in data:
                    raise CdpError(f"{method}: {data['error']}")
                result: dict[str, Any] = data.get("result", {})
                return result
            if "method" in data:
                self.events.append(data)
        raise CdpError(f"{method}: no answer")

    def pump(self, seconds: float) -> None:
        """Read events for `seconds`."""
        deadline = time.monotonic() + seconds
        self.ws.settimeout(0.05)
        try:
            while time.monotonic() < deadline:
                try:
                    data = json.loads(self.ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
                if "method" in data:
                    self.events.append(data)
        finally:
            self.ws.settimeout(30)

    def open(self, url: str, width: int = 1280, height: int = 900, mobile: bool = False) -> Page:
        """A new tab showing `url`, loaded (the load event fired)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        for domain in ("Network", "Runtime", "Log", "Page"):
            page.send(f"{domain}.enable")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )
        page.navigate(url)
        return page


class Page:
    """One tab, attached in flat mode."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.browser.send(method, params, self.session)

    def _events(self, method: str) -> list[dict[str, Any]]:
        return [
            e["params"]
            for e in self.browser.events
            if e.get("sessionId") == self.session and e["method"] == method
        ]

    def navigate(self, url: str, timeout: float = 30) -> None:
        """Go to `url` and wait for its load event."""
        before = len(self._events("Page.loadEventFired"))
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while len(self._events("Page.loadEventFired")) == before:
            if time.monotonic() > deadline:
                raise CdpError(f"{url} did not load")
            self.browser.pump(0.1)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        answer = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10) -> Any:
        """Evaluate until the value is truthy."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CdpError(f"timed out waiting for {expression}")
            self.browser.pump(0.1)

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or of the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], 6000),
                "scale": 1,
            }
        data = self.send("Page.captureScreenshot", params)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def press(self, key: str, code: str, key_code: int, text: str = "") -> None:
        """Press and release one key (as a keyboard user would; Enter's text is "\\r")."""
        for kind in ("keyDown", "keyUp"):
            params: dict[str, Any] = {
                "type": kind,
                "key": key,
                "code": code,
                "windowsVirtualKeyCode": key_code,
                "nativeVirtualKeyCode": key_code,
            }
            if text and kind == "keyDown":
                params["text"] = text
            self.send("Input.dispatchKeyEvent", params)

    @property
    def requests(self) -> list[str]:
        """Every URL the page requested."""
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    @property
    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors."""
        found = [
            json.dumps(e.get("args"))
            for e in self._events("Runtime.consoleAPICalled")
            if e.get("type") in ("error", "assert")
        ]
        found += [
            json.dumps(e["exceptionDetails"]) for e in self._events("Runtime.exceptionThrown")
        ]
        found += [
            e["entry"].get("text", "")
            for e in self._events("Log.entryAdded")
            if e["entry"].get("level") == "error"
        ]
        return found


def _drain(stream: Any) -> None:
    for _ in iter(stream.readline, b""):
        pass


__all__ = ["Browser", "CdpError", "Page", "find_chromium"]

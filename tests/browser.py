"""A headless Chromium driven over the Chrome DevTools Protocol, for the tests that look at a page.

Debian's ``chromium`` (installed by ``make setup``'s tools step) runs headless with the flags a
closed network and a root container need; the test talks to it over its DevTools websocket with
``websocket-client`` (a dependency of jupyter_server, so nothing new is installed). Three calls
cover what the tests need: open a URL, evaluate JavaScript in the page, save a screenshot.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

#: Flags of a headless Chromium on a machine without a display, GPU or outside network, as root.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-allow-origins=*",
)


def chromium_binary() -> str | None:
    """Path of Debian's ``chromium`` (or ``chromium-browser``), or None when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with one page, closed by :meth:`close` (or a ``with`` block).

    Parameters
    ----------
    workdir : path
        Folder for the browser profile and its log (the test's temporary folder).
    width, height : int
        Window size in CSS pixels (the screenshot's size).
    """

    def __init__(self, workdir: str | os.PathLike, width: int = 1400, height: int = 900):
        import websocket  # websocket-client

        binary = chromium_binary()
        if binary is None:
            raise FileNotFoundError("chromium is not installed (apt-get install chromium; make setup does it as root)")
        self.workdir = Path(workdir)
        profile = self.workdir / "chromium-profile"
        profile.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "chromium.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not start; its log:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.loads(r.read().decode()) if t.get("type") == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self._id = 0
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result (events arriving meanwhile are dropped)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def goto(self, url: str) -> None:
        """Navigate to ``url`` (returns when the navigation is committed, not when the app has rendered)."""
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str):
        """Value of a JavaScript expression in the page (JSON-serialisable values only)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90.0, interval: float = 0.5):
        """Evaluate ``expression`` until it is truthy and return that value; None after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(interval)
        return None

    def press(self, key: str, code: str, key_code: int, modifiers: int = 0) -> None:
        """Press and release one key (``modifiers``: 2 = Ctrl, 4 = Meta, 8 = Shift)."""
        for kind in ("rawKeyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code,
                windowsVirtualKeyCode=key_code,
                nativeVirtualKeyCode=key_code,
                modifiers=modifiers,
            )

    def screenshot(self, path: str | os.PathLike) -> Path:
        """Write a PNG screenshot of the page to ``path`` and return the path."""
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Close the websocket and stop the browser."""
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001 — closing a dead socket
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

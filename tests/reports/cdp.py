"""A headless Chromium driven over the DevTools protocol on a pipe (no extra package).

``--remote-debugging-pipe`` makes Chromium read commands on fd 3 and write answers on
fd 4, each a JSON message ended by a NUL byte. That is enough to size the viewport like
a phone or a wide screen, load a page, measure its layout with the browser's own
geometry and take a screenshot: the report page itself carries no script.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
    "--no-proxy-server", "--hide-scrollbars", "--force-color-profile=srgb",
    "--force-device-scale-factor=1", "--mute-audio",
)


#: runs in the child: the two pipe ends onto fds 3 and 4, then Chromium in its place
PLACE_PIPE = """
import os, sys
read_end, write_end = (os.dup(int(fd)) for fd in sys.argv[1:3])
for fd in sys.argv[1:3]:
    os.close(int(fd))
os.dup2(read_end, 3)
os.dup2(write_end, 4)
for fd in {read_end, write_end} - {3, 4}:
    os.close(fd)
os.set_inheritable(3, True)  # dup2 onto itself keeps the close-on-exec flag of os.dup
os.set_inheritable(4, True)
os.execv(sys.argv[3], sys.argv[3:])
"""


def chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser",
                      "google-chrome"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    pytest.fail("Chromium is required to test the HTML report: install it with "
                "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu), "
                "or set CHROMIUM to a Chrome/Chromium binary", pytrace=False)


class Browser:
    """One Chromium process; ``page()`` opens a tab the commands then talk to."""

    def __init__(self, profile: Path, timeout: float = 60) -> None:
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile / "chromium.log"  # a file, not a pipe: a full pipe would stall it
        self.log_file = self.log.open("wb")
        # a small Python exec wrapper puts the pipe on fds 3 and 4 (no preexec_fn: the
        # test server's threads run meanwhile)
        self.process = subprocess.Popen(
            [sys.executable, "-c", PLACE_PIPE, str(to_chrome_r), str(from_chrome_w),
             chromium(), *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log_file,
            pass_fds=(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.writer = os.fdopen(to_chrome_w, "wb", buffering=0)
        self.reader = os.fdopen(from_chrome_r, "rb", buffering=0)
        self.timeout = timeout
        self.next_id = 0
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            ready, _, _ = select.select([self.reader], [], [], self.timeout)
            if not ready:
                raise TimeoutError(f"Chromium said nothing for {self.timeout} s")
            chunk = self.reader.read(1 << 16)
            if not chunk:
                error = self.log.read_text(errors="replace")
                raise RuntimeError(f"Chromium closed the pipe: {error[-2000:]}")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, session: bool = True, **params: Any) -> dict[str, Any]:
        """One command; returns its result (raises on a protocol error)."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session and self.session:
            message["sessionId"] = self.session
        self.writer.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            answer = self._read()
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)
        raise TimeoutError(method)  # pragma: no cover

    def wait_for(self, event: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for index, message in enumerate(self.events):
                if message.get("method") == event:
                    return self.events.pop(index)
            self.events.append(self._read())
        raise TimeoutError(event)  # pragma: no cover

    def page(self) -> None:
        """Open a tab and attach to it; later commands go to that tab."""
        target = self.send("Target.createTarget", session=False, url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", session=False, targetId=target,
                                 flatten=True)["sessionId"]
        self.send("Page.enable")

    def load(self, url: str, width: int, height: int = 900) -> None:
        """Load ``url`` in a viewport ``width`` CSS pixels wide (a phone below 600)."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=width < 600)
        self.events.clear()
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """A script's value in the page (DevTools runs it; the page's own CSP forbids scripts)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """PNG of ``clip`` (CSS pixels of the page), or of the whole page."""
        if clip is None:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={**clip, "scale": 1})
        return base64.b64decode(shot["data"])

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.wait(timeout=20)
        for stream in (self.writer, self.reader, self.log_file):
            stream.close()

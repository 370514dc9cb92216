"""The HTML report in a real headless Chromium: the SVG charts must be in the DOM and on screen.

Chromium is required, not optional: install it with
``apt-get update && apt-get install -y chromium`` (Debian/Ubuntu), or point ``CHROMIUM``
at a Chrome/Chromium binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.reports.conftest import TOKEN
from tests.reports.png import colour_counts

#: the stylesheet's colour for each chart's bars (see report_bottlenecks.html)
COLOURS = {
    "level": (29, 78, 216),
    "approver": (15, 118, 110),
    "open": (245, 158, 11),
    "median": (124, 58, 237),
    "flagged": (220, 38, 38),
}
QUERY = f"since=2026-11-16&until=2026-11-24&token={TOKEN}"


def chromium() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser",
                      "google-chrome"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    pytest.fail("Chromium is required to test the HTML report: install it with "
                "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu), "
                "or set CHROMIUM to a Chrome/Chromium binary", pytrace=False)


def run_chromium(tmp_path: Path, url: str, *mode: str) -> subprocess.CompletedProcess[bytes]:
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions",
        "--no-proxy-server", "--hide-scrollbars", "--force-color-profile=srgb",
        "--force-device-scale-factor=1", "--window-size=1200,1800",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", *mode, url,
    ]
    result = subprocess.run(command, capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result


@pytest.fixture()
def served(report_app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, report_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


class BarCollector(HTMLParser):
    """The <rect class="bar ..."> elements of each chart figure, as the browser serialised them."""

    def __init__(self) -> None:
        super().__init__()
        self.figure: str | None = None
        self.bars: dict[str, list[dict[str, str | None]]] = {}
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "figure":
            self.figure = values.get("id")
        elif tag == "script":
            self.scripts += 1
        elif tag == "rect" and "bar" in (values.get("class") or "").split() and self.figure:
            self.bars.setdefault(self.figure, []).append(values)


def test_charts_render_in_headless_chromium(served: str, tmp_path: Path) -> None:
    url = f"{served}/reports/bottlenecks.html?{QUERY}"
    dom = run_chromium(tmp_path, url, "--dump-dom").stdout.decode()
    parsed = BarCollector()
    parsed.feed(dom)
    assert parsed.scripts == 0
    assert set(parsed.bars) == {"chart-level", "chart-approver", "chart-median", "chart-flagged"}
    for figure, rects in parsed.bars.items():
        for rect in rects:
            assert float(rect["width"] or 0) > 0 and float(rect["height"] or 0) > 0, (figure, rect)
    # 4 levels and 4 approvers (dana and director stack ended + open), 1 median week, 2 flagged
    assert [len(parsed.bars[f"chart-{name}"]) for name in
            ("level", "approver", "median", "flagged")] == [5, 5, 1, 2]
    assert 'href="https://jira.example.com/browse/OPS-7"' in dom

    shot = tmp_path / "report.png"
    run_chromium(tmp_path, url, f"--screenshot={shot}")
    width, height, counts = colour_counts(shot.read_bytes())
    assert (width, height) == (1200, 1800)
    drawn = {name: counts[colour] for name, colour in COLOURS.items()}
    # every chart's colour covers a visible area (a 20 px square is 400 px)
    assert all(pixels >= 400 for pixels in drawn.values()), drawn
    assert counts[(255, 255, 255)] < width * height * 0.98  # the page is not blank

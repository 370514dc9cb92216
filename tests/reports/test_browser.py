"""The HTML report in a real headless Chromium, as a reader sees it on a phone and a screen.

Chromium is required, not optional: install it with
``apt-get update && apt-get install -y chromium`` (Debian/Ubuntu), or point ``CHROMIUM``
at a Chrome/Chromium binary. The browser is driven over the DevTools protocol
(``tests/reports/cdp.py``): the page has no script, so the geometry is read by DevTools.

Set ``REPORT_SCREENSHOT=docs/report-page.png`` to write the documentation's screenshot.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.reports.cdp import Browser
from tests.reports.conftest import TOKEN, bearer
from tests.reports.loop_report import loop_report
from tests.reports.png import bands, colour_counts, decode
from webhooks.extension import app_runtime
from webhooks.page import Directory, what_to_do
from webhooks.reports import render_page

#: the stylesheet's colour for each chart's bars (see report_bottlenecks.html)
COLOURS = {
    "level": (29, 78, 216),
    "approver": (15, 118, 110),
    "open": (245, 158, 11),
    "median": (124, 58, 237),
    "flagged": (220, 38, 38),
    "delegation": (21, 128, 61),
}
QUERY = f"since=2026-11-16&until=2026-11-24&token={TOKEN}"
#: a phone, a laptop, a wide screen
WIDTHS = (360, 1024, 1920)
HEIGHT = 900

#: Geometry of what a reader sees, measured by the browser: everything that sticks out of
#: its parent or the viewport sideways, text cut short without its full text in a
#: tooltip, SVG text outside its drawing, and each chart's bars and rows. Every
#: <details> is opened first, so the evidence behind the lead is measured too.
MEASURE = r"""
(() => {
  for (const d of document.querySelectorAll('details')) d.open = true;
  const view = document.documentElement.clientWidth;
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
    (el.getAttribute('class') ? '.' + el.getAttribute('class').split(' ').join('.') : '') +
    ' "' + (el.textContent || '').trim().slice(0, 40) + '"';
  const out = [], cut = [], svgText = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') {
      if (el.tagName.toLowerCase() === 'text') {
        const box = el.closest('svg').getBoundingClientRect();
        if (r.left < box.left - 0.5 || r.right > box.right + 0.5) svgText.push(name(el));
      }
      continue;
    }
    if (r.left < -0.5 || r.right > view + 0.5) out.push('viewport: ' + name(el));
    const parent = el.parentElement.getBoundingClientRect();
    if (r.left < parent.left - 1 || r.right > parent.right + 1) out.push('parent: ' + name(el));
    const style = getComputedStyle(el);
    if (style.overflowX !== 'visible' && el.scrollWidth > el.clientWidth + 1 &&
        !el.getAttribute('title')) cut.push(name(el));
  }
  const charts = {};
  for (const figure of document.querySelectorAll('figure.chart')) {
    const box = figure.getBoundingClientRect();
    charts[figure.id] = {
      bars: figure.querySelectorAll('rect.bar').length,
      rows: figure.querySelectorAll('.bar-row, .bar-col').length,
      box: {x: box.left + scrollX, y: box.top + scrollY, width: box.width, height: box.height},
    };
  }
  const todo = document.getElementById('todo').getBoundingClientRect();
  return {view, scroll: document.documentElement.scrollWidth, out, cut, svgText, charts,
          todo: document.getElementById('todo').innerText, todoTop: todo.top,
          scripts: document.scripts.length};
})()
"""


@pytest.fixture()
def served(report_app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, report_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Browser]:
    chrome = Browser(tmp_path / "chromium-profile")
    try:
        chrome.page()
        yield chrome
    finally:
        chrome.close()


def read(browser: Browser, url: str, width: int) -> dict[str, Any]:
    browser.load(url, width, HEIGHT)
    seen: dict[str, Any] = browser.evaluate(MEASURE)
    return seen


def assert_fits(seen: dict[str, Any], width: int) -> None:
    """Nothing wider than the screen, nothing sticking out, nothing cut without its tooltip."""
    assert seen["view"] == width
    assert seen["scroll"] <= width, f"the page scrolls sideways at {width} px"
    assert seen["out"] == [], seen["out"][:10]
    assert seen["cut"] == [], seen["cut"][:10]
    assert seen["svgText"] == [], seen["svgText"][:10]
    assert seen["scripts"] == 0
    assert seen["todoTop"] < HEIGHT / 2, "what to do is on the first screen"


def bars_seen(browser: Browser, chart: dict[str, Any], colours: list[tuple[int, int, int]],
              across: bool) -> int:
    """Bars in a screenshot of one chart: bands of the bars' colours down (or across) it."""
    _, _, rows = decode(browser.screenshot(chart["box"]))
    wanted = set(colours)
    if across:  # columns: which x positions hold a bar
        return bands([sum(row[x] in wanted for row in rows) >= 3 for x in range(len(rows[0]))])
    return bands([sum(pixel in wanted for pixel in row) >= 2 for row in rows])


def test_the_served_page_reads_on_a_phone_a_laptop_and_a_wide_screen(
        served: str, report_app: Flask, browser: Browser) -> None:
    report = report_app.test_client().get(
        f"/reports/bottlenecks?{QUERY.split('&token')[0]}", headers=bearer()).get_json()
    rules = app_runtime(report_app).rules.get()
    lead = what_to_do(report, Directory.from_rules(rules, report["unmapped"]))
    assert lead.actions
    for width in WIDTHS:
        seen = read(browser, f"{served}/reports/bottlenecks.html?{QUERY}", width)
        assert_fits(seen, width)
        for action in lead.actions:  # the lead, as words on the screen
            assert action.text in " ".join(seen["todo"].split()), (width, action.text)
        charts = seen["charts"]
        assert set(charts) == {"chart-approver", "chart-level", "chart-median", "chart-flagged",
                               *(["chart-delegation"] if report["delegation"] else [])}
        # one bar row per approver and level, as many as the report has
        assert charts["chart-approver"]["rows"] == len(report["by_approver"])
        assert charts["chart-level"]["rows"] == len(report["by_level"])
        # ended and open hours stack: dana and director have both
        assert charts["chart-approver"]["bars"] == 5 and charts["chart-level"]["bars"] == 5
        # and the screenshot shows them: one band of colour per row, one column per week
        approver = [COLOURS["approver"], COLOURS["open"]]
        assert bars_seen(browser, charts["chart-approver"], approver, across=False) == len(
            report["by_approver"])
        level = [COLOURS["level"], COLOURS["open"]]
        assert bars_seen(browser, charts["chart-level"], level, across=False) == len(
            report["by_level"])
        flagged_weeks = sum(1 for week in report["trend"] if week["flagged"])
        assert charts["chart-flagged"]["bars"] == flagged_weeks == 2
        assert bars_seen(browser, charts["chart-flagged"], [COLOURS["flagged"]],
                         across=True) == flagged_weeks


def test_the_page_with_the_whole_loop_reads_at_every_width(
        make_app: Any, browser: Browser, tmp_path: Path) -> None:
    app = make_app(report_token=TOKEN)
    report = loop_report()
    rules = app_runtime(app).rules.get()
    with app.test_request_context():
        page = tmp_path / "report.html"
        page.write_text(render_page(report, rules), encoding="utf-8")
    lead = what_to_do(report, Directory.from_rules(rules, report["unmapped"]))
    for width in WIDTHS:
        seen = read(browser, page.as_uri(), width)
        assert_fits(seen, width)
        todo = " ".join(seen["todo"].split())
        assert "'Spend under 5k' could be decided by tech leads. see the evidence" in todo
        assert all(action.text in todo for action in lead.actions + lead.also)
        charts = seen["charts"]
        weeks = [week for week in report["delegation"] if week["at_or_below_information"]]
        assert charts["chart-delegation"]["bars"] == len(weeks) == 6
        assert charts["chart-delegation"]["rows"] == len(report["delegation"])
        assert bars_seen(browser, charts["chart-delegation"], [COLOURS["delegation"]],
                         across=True) == len(weeks)
        approver = [COLOURS["approver"], COLOURS["open"]]
        assert bars_seen(browser, charts["chart-approver"], approver, across=False) == len(
            report["by_approver"]) == charts["chart-approver"]["rows"]

    browser.load(page.as_uri(), 1024, HEIGHT)  # as the reader opens it: evidence folded
    shot = browser.screenshot()
    width, height, counts = colour_counts(shot)
    assert width == 1024 and height > HEIGHT
    drawn = {name: counts[colour] for name, colour in COLOURS.items()}
    assert all(pixels >= 400 for pixels in drawn.values()), drawn  # every chart is on screen
    target = os.environ.get("REPORT_SCREENSHOT")
    if target:  # the documentation: what a director reads first, down to the bar charts
        bottom = browser.evaluate("document.getElementById('by-approver')"
                                  ".getBoundingClientRect().top + scrollY")
        Path(target).write_bytes(browser.screenshot(
            {"x": 0, "y": 0, "width": 1024, "height": round(bottom) - 8}))

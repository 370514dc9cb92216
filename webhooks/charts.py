"""Geometry for the report's inline SVG charts: numbers in, rectangles out.

The template draws what this module measures, so the page needs no JavaScript, no CDN
and no network: a manager can save it and open it offline. Every label stays text and
is escaped by the template.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Segment:
    """One coloured piece of a bar (a bar stacks ended waits and waits still open)."""

    x: float
    y: float
    width: float
    height: float
    css: str  # class name the stylesheet colours
    title: str  # tooltip


@dataclass(frozen=True)
class Bar:
    label: str
    caption: str  # the figure printed beside or above the bar
    segments: tuple[Segment, ...]
    label_x: float
    label_y: float
    caption_x: float
    caption_y: float


@dataclass(frozen=True)
class Tick:
    position: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...] = ()
    axis: tuple[float, float, float, float] = (0, 0, 0, 0)  # x1, y1, x2, y2 of the baseline
    empty: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def nice_max(value: float) -> float:
    """Round an axis maximum up to 1, 2, 2.5 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def _fmt(hours: float) -> str:
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:,.1f}"


def stacked_hbars(
    rows: Sequence[tuple[str, float, float, str]],
    *,
    css: str,
    width: int = 720,
    label_width: int = 170,
    row_height: int = 26,
) -> Chart:
    """Horizontal bars, one per row of ``(label, ended hours, open hours, caption)``."""
    plot = width - label_width - 120
    top = 24
    height = top + row_height * max(len(rows), 1) + 8
    if not rows or all(ended + still <= 0 for _, ended, still, _ in rows):
        return Chart(width=width, height=60, bars=(), empty=True)
    scale = nice_max(max(ended + still for _, ended, still, _ in rows))
    bars = []
    for index, (label, ended, still, caption) in enumerate(rows):
        y = top + index * row_height + 4
        bar_height = row_height - 8
        ended_width = plot * ended / scale
        open_width = plot * still / scale
        segments = []
        if ended > 0:
            segments.append(Segment(label_width, y, max(ended_width, 1.0), bar_height, css,
                                    f"{label}: {_fmt(ended)} h waited (ended)"))
        if still > 0:
            segments.append(Segment(label_width + ended_width, y, max(open_width, 1.0),
                                    bar_height, "open", f"{label}: {_fmt(still)} h still open"))
        bars.append(Bar(label=label, caption=caption, segments=tuple(segments),
                        label_x=label_width - 8, label_y=y + bar_height - 4,
                        caption_x=label_width + ended_width + open_width + 6,
                        caption_y=y + bar_height - 4))
    ticks = tuple(Tick(label_width + plot * i / 4, _fmt(scale * i / 4)) for i in range(5))
    return Chart(width=width, height=height, bars=tuple(bars), ticks=ticks,
                 axis=(label_width, top, label_width, height - 8))


def columns(
    rows: Sequence[tuple[str, float | None]],
    *,
    css: str,
    unit: str,
    width: int = 720,
    height: int = 180,
) -> Chart:
    """Vertical columns, one per ``(label, value)``; None draws nothing (no data that week)."""
    values = [v for _, v in rows if v is not None]
    if not rows or not values or max(values) <= 0:
        return Chart(width=width, height=60, bars=(), empty=True)
    left, bottom, top = 48, 28, 16
    plot_width, plot_height = width - left - 8, height - bottom - top
    scale = nice_max(max(values))
    slot = plot_width / len(rows)
    bar_width = max(slot * 0.7, 1.0)
    every = max(1, math.ceil(len(rows) / 8))  # at most ~8 labels under the axis
    captions = len(rows) <= 26  # beyond half a year the tooltips carry the numbers
    bars = []
    for index, (label, value) in enumerate(rows):
        x = left + index * slot + (slot - bar_width) / 2
        segments: tuple[Segment, ...] = ()
        bar_height = 0.0
        if value is not None and value > 0:
            bar_height = max(plot_height * value / scale, 1.0)
            segments = (Segment(x, top + plot_height - bar_height, bar_width, bar_height, css,
                                f"{label}: {value:g} {unit}"),)
        bars.append(Bar(label=label if index % every == 0 else "",
                        caption=f"{value:g}" if captions and value is not None else "", segments=segments,
                        label_x=x + bar_width / 2, label_y=height - 8,
                        caption_x=x + bar_width / 2, caption_y=top + plot_height - bar_height - 3))
    ticks = tuple(Tick(top + plot_height - plot_height * i / 4, f"{scale * i / 4:g}")
                  for i in range(5))
    return Chart(width=width, height=height, bars=tuple(bars), ticks=ticks,
                 axis=(left, top + plot_height, width - 8, top + plot_height))

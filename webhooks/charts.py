"""Geometry for the report's charts: numbers in, rectangles out.

The template draws what this module measures, so the page needs no JavaScript, no CDN
and no network: a manager can save it and open it offline. Every label stays text and
is escaped by the template.

Horizontal bar charts are measured in percent of the plot's width: the template lays
each row out in HTML (the label wraps, so nothing is ever cut off at the left) and
draws the bar in an SVG that stretches to the row. Column charts are one SVG scaled to
the page's width by their ``viewBox``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: the narrowest bar, in percent of the plot: a few pixels on a phone, so a small figure shows
MIN_BAR = 2.0


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
    label_x: float = 0
    label_y: float = 0
    caption_x: float = 0
    caption_y: float = 0
    title: str = ""  # the whole label, when ``label`` is shortened


@dataclass(frozen=True)
class Tick:
    position: float
    text: str
    anchor: str = "middle"  # where the text hangs from the tick: start, middle or end


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...] = ()
    axis: tuple[float, float, float, float] = (0, 0, 0, 0)  # x1, y1, x2, y2 of the baseline
    empty: bool = False


def axis_ticks(maximum: float, *, counts: bool = False, most: int = 5) -> tuple[float, ...]:
    """Round tick values from 0 to at least ``maximum``: steps of 1, 2, 2.5 or 5 times a power of ten.

    ``counts`` keeps every tick a whole number (a chart of 3 flagged waits is ticked
    0, 1, 2, 3, never 0.75); at most ``most`` intervals.
    """
    if maximum <= 0:
        return (0.0, 1.0)
    raw = maximum / most
    power = 10 ** math.floor(math.log10(raw))
    # 2.5 only where it is a whole number (25, 250): never a tick at 7.5
    steps = [m * power for m in (1, 2, 2.5, 5, 10) if m != 2.5 or power >= 10]
    step = next(step for step in steps if step >= raw * (1 - 1e-9))
    if counts:
        step = max(step, 1.0)
    intervals = math.ceil(maximum / step - 1e-9)
    return tuple(round(step * i, 10) for i in range(intervals + 1))


def tick_text(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,g}"


def hours_text(hours: float) -> str:
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:,.1f}"


def hbars(rows: Sequence[tuple[str, float, float, str]], *, css: str) -> Chart:
    """Horizontal bars, one per ``(label, ended hours, open hours, caption)``, in percent.

    Each bar is drawn in a ``0 0 100 10`` box stretched to its row; the ticks' positions
    are percentages of the plot's width.
    """
    if not rows or all(ended + still <= 0 for _, ended, still, _ in rows):
        return Chart(width=100, height=10, bars=(), empty=True)
    ticks = axis_ticks(max(ended + still for _, ended, still, _ in rows))
    top = ticks[-1]
    bars = []
    for label, ended, still, caption in rows:
        ended_width = max(100 * ended / top, MIN_BAR) if ended > 0 else 0.0
        open_width = min(max(100 * still / top, MIN_BAR), 100 - ended_width) if still > 0 else 0.0
        segments = []
        if ended > 0:
            segments.append(Segment(0, 0, ended_width, 10, css,
                                    f"{label}: {hours_text(ended)} hours waited on "
                                    "decisions that were taken"))
        if still > 0:
            segments.append(Segment(ended_width, 0, open_width, 10, "open",
                                    f"{label}: {hours_text(still)} hours so far on "
                                    "decisions still waiting"))
        bars.append(Bar(label=label, caption=caption, segments=tuple(segments),
                        title=label))
    last = len(ticks) - 1
    return Chart(width=100, height=10, bars=tuple(bars), ticks=tuple(
        Tick(100 * value / top, tick_text(value),
             "start" if i == 0 else "end" if i == last else "middle")
        for i, value in enumerate(ticks)))


def columns(
    rows: Sequence[tuple[str, float | None]],
    *,
    css: str,
    titles: Sequence[str] | None = None,
    captions: Sequence[str] | None = None,
    counts: bool = False,
    top: float | None = None,
    suffix: str = "",
    width: int = 480,
    height: int = 190,
) -> Chart:
    """Vertical columns, one per ``(label, value)``; None draws nothing (no data that week).

    ``counts`` ticks whole numbers only; ``top`` fixes the axis (100 for a share in percent);
    ``titles`` and ``captions`` replace each column's tooltip and the figure above it.
    """
    values = [v for _, v in rows if v is not None]
    if not rows or not values or (max(values) <= 0 and top is None):
        return Chart(width=width, height=60, bars=(), empty=True)
    ticks = axis_ticks(top if top is not None else max(values), counts=counts, most=4)
    # room for the longest tick text at the largest font the page gives it (15 px on phones)
    longest = max(len(tick_text(value) + suffix) for value in ticks)
    left, right, bottom, upper = max(44, 14 + 9 * longest), 14, 26, 18
    plot_width, plot_height = width - left - right, height - bottom - upper
    scale = ticks[-1]
    slot = plot_width / len(rows)
    bar_width = max(slot * 0.7, 1.0)
    every = max(1, math.ceil(len(rows) / 6))  # at most ~6 labels under the axis
    show_captions = len(rows) <= 14  # beyond that the tooltips carry the numbers
    bars = []
    for index, (label, value) in enumerate(rows):
        x = left + index * slot + (slot - bar_width) / 2
        segments: tuple[Segment, ...] = ()
        bar_height = 0.0
        text = f"{value:g}{suffix}" if value is not None else ""
        if captions is not None:
            text = captions[index]
        if value is not None and value > 0:
            bar_height = max(plot_height * value / scale, 1.0)
            title = titles[index] if titles is not None else f"{label}: {text}"
            segments = (Segment(x, upper + plot_height - bar_height, bar_width, bar_height,
                                css, title),)
        bars.append(Bar(label=label if index % every == 0 else "",
                        caption=text if show_captions else "", segments=segments,
                        label_x=x + bar_width / 2, label_y=height - 8,
                        caption_x=x + bar_width / 2,
                        caption_y=upper + plot_height - bar_height - 4))
    return Chart(width=width, height=height, bars=tuple(bars), ticks=tuple(
        Tick(upper + plot_height - plot_height * value / scale, tick_text(value) + suffix, "end")
        for value in ticks), axis=(left, upper + plot_height, width - right, upper + plot_height))

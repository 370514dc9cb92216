"""Chart geometry: round ticks (whole numbers for counts), bars in proportion."""

from __future__ import annotations

import pytest

from webhooks.charts import axis_ticks, columns, hbars


@pytest.mark.parametrize(("maximum", "ticks"), [
    (3, (0, 1, 2, 3)),
    (1, (0, 1)),
    (2, (0, 1, 2)),
    (5, (0, 1, 2, 3, 4, 5)),
    (7, (0, 2, 4, 6, 8)),
    (11, (0, 5, 10, 15)),
    (240, (0, 50, 100, 150, 200, 250)),
    (110, (0, 25, 50, 75, 100, 125)),
])
def test_counts_are_ticked_in_whole_numbers(maximum: float, ticks: tuple[int, ...]) -> None:
    assert axis_ticks(maximum, counts=True) == ticks


def test_hours_may_take_fractions_below_one() -> None:
    assert axis_ticks(0.3) == (0, 0.1, 0.2, 0.3)
    assert axis_ticks(2) == (0, 0.5, 1, 1.5, 2)  # hours; a count of 2 is 0, 1, 2


def test_a_count_chart_never_shows_a_fraction() -> None:
    chart = columns([("16 Nov", 2.0), ("23 Nov", 3.0), ("30 Nov", 0.0)], css="flagged",
                    counts=True)
    assert [tick.text for tick in chart.ticks] == ["0", "1", "2", "3"]
    assert [bar.caption for bar in chart.bars] == ["2", "3", "0"]
    # one column per week, drawn in proportion: 3 fills the plot, 2 two thirds of it
    heights = [bar.segments[0].height for bar in chart.bars if bar.segments]
    assert heights[0] == pytest.approx(heights[1] * 2 / 3)


def test_a_share_chart_runs_to_one_hundred_percent() -> None:
    chart = columns([("5 Oct", 0.0), ("12 Oct", 25.0), ("19 Oct", None)], css="delegation",
                    top=100, suffix="%", counts=True)
    assert [tick.text for tick in chart.ticks] == ["0%", "25%", "50%", "75%", "100%"]
    assert not chart.empty and len(chart.bars) == 3


def test_bars_are_percentages_of_the_axis_and_keep_their_labels_whole() -> None:
    long_label = "557058:f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5b-contractor"
    chart = hbars([(long_label, 150.0, 50.0, "3 decisions"), ("Dana K", 40.0, 0.0, "1")],
                  css="approver")
    assert [tick.text for tick in chart.ticks] == ["0", "50", "100", "150", "200"]
    assert [tick.anchor for tick in chart.ticks] == ["start", "middle", "middle", "middle", "end"]
    first = chart.bars[0]
    assert first.label == long_label and first.title == long_label
    assert [(s.css, s.x, s.width) for s in first.segments] == [("approver", 0, 75.0),
                                                               ("open", 75.0, 25.0)]
    assert [(s.x, s.width) for s in chart.bars[1].segments] == [(0, 20.0)]
    # a tiny figure still shows, and the open hours start where the ended bar ends
    tiny = hbars([("a", 1.0, 199.0, ""), ("b", 0.0, 1.0, "")], css="approver")
    assert [(s.x, s.width) for s in tiny.bars[0].segments] == [(0, 2.0), (2.0, 98.0)]
    assert [(s.css, s.x, s.width) for s in tiny.bars[1].segments] == [("open", 0, 2.0)]
    assert hbars([], css="approver").empty

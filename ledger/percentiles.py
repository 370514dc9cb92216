"""Exact ``percentile_cont`` for many groups at once without sorting every group (PostgreSQL).

Sorting every breakdown's ~500,000 durations is what made the report slow. Two passes
find the same values instead:

1. **Count.** A hash aggregate (no sort) counts each group's waits per *bucket*, an
   integer that never decreases as the wait grows (``floor(sqrt(wait) * SCALE)``; sqrt,
   the product and floor are exactly rounded, so the order can never be inverted). A
   group's cumulative bucket counts tell in which bucket its ``k``-th smallest wait lies
   and how many waits sit in the buckets before it.
2. **Pick.** Only the waits of those few (group, bucket) cells are read again; the
   database numbers them in order inside their cell and returns the ones at the wanted
   ranks. The median and p90 are then interpolated exactly as ``percentile_cont`` does
   (``ledger.figures.percentile``).

Both passes read one snapshot (the report runs in a REPEATABLE READ transaction), and
every wanted rank must come back exactly once; otherwise the caller falls back to the
sort-based queries.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Float, Integer, cast, func, literal
from sqlalchemy.sql.elements import ColumnElement

from ledger.figures import FRACTIONS, percentile

#: Buckets 10 sqrt(seconds) wide: an hour's wait is bucket 6, a day's 29, 30 days' 160.
#: Coarser buckets mean fewer groups to count in pass 1 and more waits to rank in pass 2.
SCALE = 0.1
#: The last bucket (also where NaN and infinity land, as they sort last).
LAST_BUCKET = 2**20 - 1


def bucket(wait: ColumnElement[Any]) -> ColumnElement[int]:
    """The bucket of a wait in seconds: non-decreasing in the wait, NULL when it is NULL."""
    root = func.sqrt(func.greatest(wait, literal(0.0, Float)))
    return cast(func.floor(func.least(root * SCALE, float(LAST_BUCKET))), Integer)


def wait_ranges(numbers: Iterable[int]) -> list[tuple[float | None, float | None]]:
    """Ranges of the stored wait (seconds) that hold every wait of these buckets, a little
    wider than the buckets, adjacent buckets merged; None is an open end.

    They let an index on ``wait_seconds`` find the few waits pass 2 reads; the bucket
    itself is still checked exactly on every wait they return.
    """
    ranges: list[tuple[float | None, float | None]] = []
    previous = None
    for number in sorted(set(numbers)):
        low = None if number == 0 else (number / SCALE) ** 2 * 0.999 - 1.0
        high = None if number >= LAST_BUCKET else ((number + 1) / SCALE) ** 2 * 1.001 + 1.0
        if previous is not None and number == previous + 1:
            ranges[-1] = (ranges[-1][0], high)
        else:
            ranges.append((low, high))
        previous = number
    return ranges


def ranks(count: int, fractions: Sequence[float] = FRACTIONS) -> set[int]:
    """The 0-based ranks ``percentile_cont`` reads: floor and ceil of ``f * (count - 1)``."""
    wanted: set[int] = set()
    for fraction in fractions:
        position = fraction * (count - 1)
        wanted.update((math.floor(position), math.ceil(position)))
    return wanted


@dataclass
class Histogram:
    """Where one group's waits at the wanted ranks lie; the waits themselves once picked.

    ``cells`` maps a bucket to (waits in the buckets before it, waits in it), for the
    buckets that hold a wanted rank.
    """

    count: int = 0
    cells: dict[int, tuple[int, int]] = field(default_factory=dict)
    picked: dict[int, float] = field(default_factory=dict)

    def wanted(self) -> Iterable[tuple[int, int, int]] | None:
        """(bucket, rank, rank inside the bucket) of every rank ``percentile_cont`` reads.

        None if a rank lies in no known cell (the counts disagree).
        """
        found = []
        for rank in sorted(ranks(self.count)) if self.count else []:
            cell = [(number, rank - before) for number, (before, size) in self.cells.items()
                    if before <= rank < before + size]
            if len(cell) != 1:
                return None
            found.append((cell[0][0], rank, cell[0][1]))
        return found

    def percentiles(self) -> tuple[float | None, ...]:
        return tuple(percentile(self.picked, f, self.count) for f in FRACTIONS)

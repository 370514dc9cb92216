"""The second percentile pass finds its waits by ranges of ``wait_seconds``: every wait of
a wanted bucket must lie in them, or a rank would go missing."""

from __future__ import annotations

import math
import random

from ledger.percentiles import LAST_BUCKET, SCALE, wait_ranges


def python_bucket(wait: float) -> int:
    return int(math.floor(min(math.sqrt(max(wait, 0.0)) * SCALE, float(LAST_BUCKET))))


def inside(wait: float, ranges: list[tuple[float | None, float | None]]) -> bool:
    return any((low is None or wait >= low) and (high is None or wait <= high)
               for low, high in ranges)


def test_every_wait_of_a_wanted_bucket_lies_in_its_ranges() -> None:
    rng = random.Random(3)
    waits = [rng.expovariate(1 / 108_000) for _ in range(20_000)]
    waits += [-5.0, 0.0, 1e-9, 100.0, 99.999999, 10_000.0, 1e13, 1e300]
    for _ in range(50):
        wanted = set(rng.sample(range(0, 200), 6)) | {0}
        ranges = wait_ranges(wanted)
        assert len(ranges) <= len(wanted)
        for wait in waits:
            if python_bucket(wait) in wanted:
                assert inside(wait, ranges), (wait, wanted)


def test_adjacent_buckets_share_one_range_and_the_last_is_open() -> None:
    assert len(wait_ranges({3, 4, 5})) == 1
    assert wait_ranges({LAST_BUCKET})[0][1] is None
    assert wait_ranges({0})[0][0] is None

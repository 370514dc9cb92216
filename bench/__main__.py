"""``python -m bench [intake|worker|report|backfill|latency|reconcile|faults|all] [--sizes 100k,1M]``:
figures as ratios, into bench/results/ (``--sizes`` is the report's)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    options = argv[next((i for i, a in enumerate(argv) if a.startswith("--")), len(argv)):]
    names = argv[:len(argv) - len(options)] or ["all"]
    order = ["intake", "worker", "latency", "backfill", "report", "reconcile", "faults"]
    chosen = order if names == ["all"] else names
    unknown = [n for n in chosen if n not in order]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)} (choose from {', '.join(order)}, all)")
        return 2
    for name in chosen:
        module = __import__(f"bench.{name}", fromlist=["run"])
        # options (``report --sizes 100k,1M``) go to the benchmarks that take them
        if options and name == "report":
            module.run(options)
        else:
            module.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

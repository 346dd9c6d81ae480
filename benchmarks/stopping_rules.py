"""Pocock table construction time, and operating characteristics as the monitor runs them.

    python benchmarks/stopping_rules.py [--trials 2000] [--workers 2]

1. Pocock-type tables (Ivanova, Qaqish & Schell 2005) for N = 100, 400, 1000 at p0 = 0.4,
   alpha = 0.1: seconds to build, against the exact crossing recursion at the final level alone
   (the baseline: one O(N^2) pass, which any construction needs at least once).
2. ``plan check --simulate`` on the SPARKLE-L plan: trials per second through validation,
   projection and monitor, and the realised P(stop) of each rule against its exact value.
"""

from __future__ import annotations

import argparse
import time

from safety_stream.boundaries import crossing, pocock_table
from safety_stream.commands.plan_simulate import simulate_rows
from safety_stream.runtime import default_plan
from safety_stream.simulate.operating import OcSettings


def pocock_timings() -> None:
    print("Pocock tables (p0 0.4, alpha 0.1):")
    print(f"  {'N':>5} {'build s':>8} {'one crossing pass s':>20} {'ratio':>6}")
    for n in (100, 400, 1000):
        pocock_table.cache_clear()
        started = time.perf_counter()
        table = pocock_table(n, 0.4, 0.1)
        build = time.perf_counter() - started
        started = time.perf_counter()
        crossing(table.looks, table.stop_if_at_least, 0.4)
        one = time.perf_counter() - started
        print(f"  {n:>5} {build:>8.2f} {one:>20.3f} {build / one:>6.1f}")


def simulation(trials: int, workers: int) -> None:
    plan = default_plan()
    settings = OcSettings(trials=trials, workers=workers, seed=1)
    started = time.perf_counter()
    rows = simulate_rows(plan, settings)
    seconds = time.perf_counter() - started
    simulated = sum(row.outcome.trials for row in rows if row.rule_id != "(any rule)")
    runs = len({(row.scenario, row.rate) for row in rows})
    print(
        f"\nplan check --simulate {trials} (SPARKLE-L, {workers} workers): {seconds:.1f} s, "
        f"{runs} scenario runs"
    )
    print(f"  {'rule':<26} {'scenario':<30} {'P(stop)':>8} {'exact':>7} {'diff/SE':>8}")
    for row in rows:
        p = row.outcome.p_stop
        if row.exact is None:
            print(f"  {row.rule_id:<26} {row.scenario:<30} {p:>8.3f}")
            continue
        se = max((row.exact * (1 - row.exact) / row.outcome.trials) ** 0.5, 1e-9)
        print(
            f"  {row.rule_id:<26} {row.scenario:<30} {p:>8.3f} {row.exact:>7.3f} "
            f"{(p - row.exact) / se:>8.1f}"
        )
    print(f"  ({simulated} rule-trials)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    pocock_timings()
    simulation(args.trials, args.workers)


if __name__ == "__main__":
    main()

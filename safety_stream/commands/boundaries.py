"""``safety-stream boundaries bayes|pocock``: a boundary table and its exact operating
characteristics, readable or as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from safety_stream.boundaries import BoundaryTable, bayes_table, pocock_table


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    boundaries = commands.add_parser(
        "boundaries", help="stopping boundary tables and their operating characteristics"
    )
    methods = boundaries.add_subparsers(dest="method", required=True)
    bayes = methods.add_parser("bayes", help="Bayesian beta-binomial continuous monitoring")
    bayes.add_argument("--n", type=int, required=True, help="maximum number of patients")
    bayes.add_argument("--theta", type=float, required=True, help="unacceptable rate")
    bayes.add_argument("--cutoff", type=float, required=True, help="stop if P(p > theta) > it")
    bayes.add_argument("--prior", default="1,1", help="Beta prior a,b (default 1,1)")
    bayes.add_argument("--min-n", type=int, default=1, help="first n at which to stop")
    pocock = methods.add_parser("pocock", help="Pocock-type boundary (Ivanova et al. 2005)")
    pocock.add_argument("--n", type=int, required=True, help="maximum number of patients")
    pocock.add_argument("--p0", type=float, required=True, help="acceptable rate")
    pocock.add_argument("--p1", type=float, required=True, help="unacceptable rate")
    pocock.add_argument("--alpha", type=float, required=True, help="crossing probability at p0")
    pocock.add_argument("--looks", help="group-sequential looks, e.g. 10,20,30,40")
    for parser in (bayes, pocock):
        parser.add_argument("--oc", help="rates for the operating characteristics, e.g. 0.1,0.2")
        parser.add_argument("--json", action="store_true", help="machine-readable output")


class UsageError(ValueError):
    pass


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated numbers, got {text!r}") from None


def _probability(value: float, flag: str) -> float:
    if not 0 < value < 1:
        raise UsageError(f"{flag}: must be strictly between 0 and 1, got {value}")
    return value


def build(args: argparse.Namespace) -> tuple[BoundaryTable, list[float]]:
    if args.n < 1 or args.n > 1000:
        raise UsageError(f"--n: must be between 1 and 1000, got {args.n}")
    if args.method == "bayes":
        prior = _floats(args.prior, "--prior")
        if len(prior) != 2 or min(prior) <= 0:
            raise UsageError(f"--prior: expected two positive numbers a,b, got {args.prior!r}")
        if not 1 <= args.min_n <= args.n:
            raise UsageError(f"--min-n: must be between 1 and --n ({args.n}), got {args.min_n}")
        table = bayes_table(
            args.n,
            _probability(args.theta, "--theta"),
            _probability(args.cutoff, "--cutoff"),
            (prior[0], prior[1]),
            args.min_n,
        )
        default_oc = [0.1, 0.2, 0.3, 0.4]
    else:
        p0, p1 = _probability(args.p0, "--p0"), _probability(args.p1, "--p1")
        if p1 <= p0:
            raise UsageError(f"--p1 ({p1}) must be above --p0 ({p0})")
        looks = None
        if args.looks:
            looks = tuple(int(v) for v in _floats(args.looks, "--looks"))
            if list(looks) != sorted(set(looks)) or looks[0] < 1 or looks[-1] > args.n:
                raise UsageError(f"--looks: must increase strictly within 1..{args.n}")
        table = pocock_table(args.n, p0, _probability(args.alpha, "--alpha"), looks)
        default_oc = [p0, p1]
    oc = [_probability(p, "--oc") for p in _floats(args.oc, "--oc")] if args.oc else default_oc
    return table, oc


def render(table: BoundaryTable, oc: list[float]) -> list[str]:
    parameters = ", ".join(f"{k}={v}" for k, v in table.parameters)
    lines = [f"{table.method} boundary ({parameters})"]
    if table.nominal_level is not None:
        lines.append(f"common nominal level {table.nominal_level:.6f}")
    lines.append(f"{'n':>5}  stop if at least")
    for look, bound in zip(table.looks, table.stop_if_at_least, strict=True):
        lines.append(f"{look:>5}  {'-' if bound is None else bound}")
    lines.append(f"{'p':>8}  {'P(stop)':>9}  {'P(stop early)':>13}  {'E[N]':>7}")
    for p in oc:
        point = table.operating_characteristics(p)
        lines.append(
            f"{p:>8.3f}  {point.p_stop:>9.4f}  {point.p_stop_early:>13.4f}"
            f"  {point.expected_n:>7.2f}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    try:
        table, oc = build(args)
    except UsageError as error:
        print(f"safety-stream boundaries: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(table.as_json(oc), indent=2))
    else:
        print("\n".join(render(table, oc)))
    return 0

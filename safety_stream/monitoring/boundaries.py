"""Moved to :mod:`safety_stream.boundaries` (the plan validates its rules with it, and the plan
may not import the monitor). This re-export stays while work in flight (issue 18) still
imports the old path; new code imports ``safety_stream.boundaries``."""

from safety_stream.boundaries import (
    TIE_GUARD,
    BoundaryTable,
    OperatingPoint,
    bayes_boundary,
    bayes_table,
    beta_cdf,
    crossing,
    pocock_table,
    posterior_above,
    stops,
)

__all__ = [
    "TIE_GUARD",
    "BoundaryTable",
    "OperatingPoint",
    "bayes_boundary",
    "bayes_table",
    "beta_cdf",
    "crossing",
    "pocock_table",
    "posterior_above",
    "stops",
]

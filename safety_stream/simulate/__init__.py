"""A seeded simulator of the SPARKLE-L trial: sites enrolling patients, treatment schedules,
AEs drawn per modality from published rates, follow-ups, corrections and bad submissions."""

from safety_stream.simulate.generator import SimulatedRecord, simulate
from safety_stream.simulate.rates import SCENARIOS, SimulationConfig

__all__ = ["SCENARIOS", "SimulatedRecord", "SimulationConfig", "simulate"]

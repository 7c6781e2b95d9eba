"""A local simulator of both upstream APIs, for the demo, the tests and the benchmarks."""

from gateway.simulator.app import Knobs, Simulator, UpstreamKnobs
from gateway.simulator.data import SimulatorConfig

__all__ = ["Knobs", "Simulator", "SimulatorConfig", "UpstreamKnobs"]

"""A local simulator of both upstream APIs, for the demo, the tests and the benchmarks.

``Simulator(SimulatorConfig(seed=7, subscriptions=300)).app`` serves OMA and CBC at
their real paths; ``python -m gateway.simulator`` serves it on a port.
"""

from gateway.simulator.app import CallRecord, Knobs, Simulator, UpstreamKnobs
from gateway.simulator.data import SimulatorConfig, Tenant

__all__ = ["CallRecord", "Knobs", "Simulator", "SimulatorConfig", "Tenant", "UpstreamKnobs"]

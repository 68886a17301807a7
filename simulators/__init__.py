"""shopfloor simulators: OPC UA and Modbus TCP machines driven by a plant scenario.

``runner.run(scenario_path, truth_path, duration_s)`` serves a scenario and writes
its ground-truth log; ``truth.load_truth(path).oee(...)`` computes the true OEE.
"""

from .codes import DEVICE_STATE_BY_CODE, DEVICE_STATE_CODES

__all__ = ["DEVICE_STATE_BY_CODE", "DEVICE_STATE_CODES"]

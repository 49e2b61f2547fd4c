"""Per-node power sensors (paper III.B.1, issue 15): each edge node measures its own power.

One module per vendor: ``rapl`` (Intel/AMD powercap), ``nvml`` (NVIDIA GPUs), ``jetson``
(INA3221), ``pi5`` (Raspberry Pi 5 PMIC), plus the ``profile`` model fallback. ``detect`` probes
them and picks the best; ``meter`` turns sensors into an
:class:`~carbonedge.carbon.energy.EnergyMeter`. Every reader takes its root directory, command
runner or vendor module as an argument, so tests point it at a fixture. nvidia-ml-py is imported
only when an :class:`NvmlSensor` is built.
"""

from carbonedge.carbon.sensors.base import (
    INCLUDED_IN_CPU,
    SENSOR_METHODS,
    PowerSensor,
    Rail,
    RailValue,
    SensorError,
    SensorSample,
)
from carbonedge.carbon.sensors.detect import (
    CODECARBON,
    Detection,
    Probe,
    detect_sensors,
    meter_for,
)
from carbonedge.carbon.sensors.jetson import Ina3221Sensor
from carbonedge.carbon.sensors.meter import SensorMeter
from carbonedge.carbon.sensors.nvml import NvmlSensor
from carbonedge.carbon.sensors.pi5 import Pi5PmicSensor, parse_pmic_adc
from carbonedge.carbon.sensors.profile import HostCpuUtilisation, ProfileSensor
from carbonedge.carbon.sensors.rapl import RaplSensor

__all__ = [
    "CODECARBON",
    "INCLUDED_IN_CPU",
    "SENSOR_METHODS",
    "Detection",
    "HostCpuUtilisation",
    "Ina3221Sensor",
    "NvmlSensor",
    "Pi5PmicSensor",
    "PowerSensor",
    "Probe",
    "ProfileSensor",
    "Rail",
    "RailValue",
    "RaplSensor",
    "SensorError",
    "SensorMeter",
    "SensorSample",
    "detect_sensors",
    "meter_for",
    "parse_pmic_adc",
]

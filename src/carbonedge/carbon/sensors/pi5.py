"""Raspberry Pi 5 through its PMIC's ADCs, ``vcgencmd pmic_read_adc`` (method ``pi5-pmic``).

The Pi 5's PMIC measures the current and voltage of each rail it supplies; the firmware prints
them, one per line, e.g. (lines of a real Pi 5's output, as published at
gist.github.com/cleverca22/95d2cb2f4e1f59be2bd94f0e1d446cc9)::

       3V7_WL_SW_A current(0)=0.04782057A
        VDD_CORE_A current(7)=0.92871990A
       3V7_WL_SW_V volt(8)=3.70534400V
        VDD_CORE_V volt(15)=0.72097620V
           EXT5V_V volt(24)=5.17105900V

Raspberry Pi's vcgencmd documentation (raspberrypi.com/documentation/computers/os.html)
does not describe this command's output; this parser follows the output above, which is also
what CodeCarbon's ``Raspberry`` reader parses. ``vcgencmd`` needs access to ``/dev/vcio`` (the
``video`` group on Raspberry Pi OS); older boards answer that the command is not registered.

Power per rail is volt x current, for the rails that have both (``EXT5V`` and ``BATT`` have only
a voltage). Summed: ``DDR_VDD2`` and ``DDR_VDDQ`` into ``ram``, every other rail into ``cpu``
(covering the VideoCore GPU, which is inside ``VDD_CORE``); ``HDMI`` (power handed to a display)
is reported, not summed. The PMIC does not see its own conversion losses nor the USB/5 V loads,
so this is less than the power at the wall (community fits add ~13% + 0.6 W; none is applied).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from carbonedge.carbon.sensors.base import Rail, RailValue, SensorError, SensorSample

Runner = Callable[[Sequence[str]], str]
"""Runs a command and returns its standard output (raises OSError / SensorError on failure)."""

# "<RAIL>_A current(<adc>)=<amps>A" or "<RAIL>_V volt(<adc>)=<volts>V"
_LINE = re.compile(
    r"^\s*(?P<rail>[A-Za-z0-9_]+)_(?P<u>[AV])\s+(?P<kind>current|volt)\(\d+\)="
    r"(?P<v>\S*?)(?P=u)?\s*$"
)
RAM_RAILS = ("DDR_VDD2", "DDR_VDDQ")
REPORTED_ONLY = ("HDMI",)


def find_vcgencmd(root: str | Path = "/") -> str:
    """``vcgencmd`` on PATH for ``root="/"``, else ``<root>/usr/bin/vcgencmd`` (a fixture)."""
    if Path(root) == Path("/"):
        return shutil.which("vcgencmd") or "/usr/bin/vcgencmd"
    return str(Path(root) / "usr/bin/vcgencmd")


def run_command(argv: Sequence[str], timeout_s: float = 5.0) -> str:
    """Run ``argv`` and return its stdout; a failure is a SensorError with its stderr."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise SensorError(f"{argv[0]}: not found (not a Raspberry Pi?)") from None
    except PermissionError:
        raise SensorError(f"{argv[0]}: permission denied") from None
    except subprocess.TimeoutExpired:
        raise SensorError(f"{' '.join(argv)}: no answer within {timeout_s} s") from None
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        raise SensorError(
            f"{' '.join(argv)}: exit {done.returncode}: {why[0] if why else 'no output'}"
            " (needs a Raspberry Pi 5 and access to /dev/vcio, e.g. the 'video' group)"
        )
    return done.stdout


def parse_pmic_adc(text: str, where: str = "vcgencmd pmic_read_adc") -> dict[str, float]:
    """Rail -> power (W) from ``pmic_read_adc`` output; garbage is a SensorError.

    Lines that are not rail readings are ignored; a rail reading whose value is not a finite,
    non-negative number is an error naming the line.
    """
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        try:
            value = float(m["v"])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise SensorError(f"{where}: implausible reading {line.strip()!r}")
        (amps if m["kind"] == "current" else volts)[m["rail"]] = value
    return {rail: amps[rail] * volts[rail] for rail in amps if rail in volts}


class Pi5PmicSensor:
    """A :class:`~carbonedge.carbon.sensors.base.PowerSensor` over ``vcgencmd pmic_read_adc``.

    ``runner`` runs the command (injectable for tests); ``vcgencmd`` is the executable's path
    (default :func:`find_vcgencmd` of ``root``).
    """

    method = "pi5-pmic"

    def __init__(
        self,
        root: str | Path = "/",
        *,
        runner: Runner = run_command,
        vcgencmd: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._argv = (vcgencmd or find_vcgencmd(root), "pmic_read_adc")
        self._runner = runner
        self._clock = clock
        self._closed = False
        first = self._measure()
        if not first:
            raise SensorError(
                f"{' '.join(self._argv)}: no rail with both a current and a voltage "
                "(not a Raspberry Pi 5?)"
            )
        self._rails = tuple(
            Rail(
                name,
                "" if name in REPORTED_ONLY else ("ram" if name in RAM_RAILS else "cpu"),
                "power",
                f"{' '.join(self._argv)}: {name}_A x {name}_V",
                ("cpu", "gpu") if name not in RAM_RAILS + REPORTED_ONLY else (),
            )
            for name in sorted(first)
        )

    def _measure(self) -> dict[str, float]:
        try:
            text = self._runner(self._argv)
        except OSError as exc:
            raise SensorError(f"{self._argv[0]}: cannot run ({exc.strerror or exc})") from None
        return parse_pmic_adc(text, " ".join(self._argv))

    def rails(self) -> tuple[Rail, ...]:
        return self._rails

    def read(self) -> SensorSample:
        """Every rail's power (W); a rail seen at start and now absent is a SensorError."""
        if self._closed:
            raise SensorError("Pi 5 PMIC sensor read after close()")
        t_s = self._clock()
        watts = self._measure()
        missing = [r.name for r in self._rails if r.name not in watts]
        if missing:
            raise SensorError(f"{' '.join(self._argv)}: rail(s) {', '.join(missing)} missing")
        return SensorSample(t_s, {r.name: RailValue(power_w=watts[r.name]) for r in self._rails})

    def close(self) -> None:
        self._closed = True

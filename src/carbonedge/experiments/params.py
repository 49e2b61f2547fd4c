"""Experiment parameters (paper Section IV.A) and the results folder derived from them.

One frozen dataclass holds everything that changes a result; its canonical JSON (sorted keys)
is hashed into the results folder's name, so the same parameters find the same folder and a
finished run is reused (``ml-energy/benchmark``'s habit, see STYLE.md).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from carbonedge.errors import ConfigError

RuntimeKind = Literal["torch", "onnx"]
AttributionKind = Literal["cputime", "quota"]
MeterKind = Literal["codecarbon", "fake"]
CostKind = Literal["eq5", "macs", "measured"]

#: The paper's three CNNs in the order of Table IV (IV.A.3).
PAPER_MODELS = ("mobilenet_v2", "mobilenetv4_conv_small", "efficientnet_b0")
#: Scheduling modes of Table I, in Table II's order.
CE_MODES = ("performance", "balanced", "green")
#: Policies run for the CarbonEdge rows: the paper's literal scoring, then ours.
CE_POLICIES = ("paper", "normalized")

MONOLITHIC = "Monolithic"
AMP4EC = "AMP4EC"
#: The ``constrained`` policy (least predicted carbon under a latency SLO): ours, not the paper's.
CE_SLO = "CE-SLO (ours)"
#: Default SLO: this many times the fastest node's predicted latency for the model.
DEFAULT_SLO_FACTOR = 3.5


def ce_label(mode: str, policy: str) -> str:
    """Row label of a CarbonEdge configuration: ``CE-Green`` or ``CE-Green (norm.)`` (ours)."""
    base = f"CE-{mode.capitalize()}"
    return base if policy == "paper" else f"{base} (norm.)"


def config_labels() -> tuple[str, ...]:
    """Every configuration in run order: Monolithic, AMP4EC, CE (paper), CE (normalized),
    CE-SLO (ours)."""
    ce = tuple(ce_label(m, p) for p in CE_POLICIES for m in CE_MODES)
    return (MONOLITHIC, AMP4EC, *ce, CE_SLO)


@dataclass(frozen=True)
class ExperimentParams:
    """Everything that changes the result of ``carbonedge reproduce``.

    Attributes:
        models: registry names of the models (Table IV order by default).
        n_images: images per run (paper: 50), batch 1, closed loop.
        repeats: repeats per configuration (paper: 3; default 5, see docs/experiments.md); 95% CI
            over repeats.
        runtime: ``torch`` (the paper's PyTorch eager) or ``onnx`` (ONNX Runtime, ours).
        attribution: ``cputime`` (default, Kepler's) or ``quota`` (the paper's IV.A.1).
        meter: ``codecarbon`` (CodeCarbon offline tracker, machine mode) or ``fake``.
        ram_model: ``codecarbon`` (v3 constant) or ``paper`` (0.375 W/GB, III.B.1).
        fleet_file: TOML fleet file, or None for the paper's three nodes.
        images_dir: folder of images, or None for the scikit-image photographs.
        seed: image sampling and model weight seed.
        mono_node: node of the Monolithic baseline (None: the paper's Node-Medium, 530 g/kWh,
            or the node of median intensity in a user fleet).
        sweep_points: wC values in linspace(0, 1, sweep_points) for Fig. 3.
        sweep_tasks: real tasks run at each sweep point.
        sweep_model: model of the sweep (None: mobilenet_v2 if run, else the first model).
        warmup_tasks: warm-up tasks per node before each run (seed telemetry; not counted).
        partition_cost: layer cost for AMP4EC's balanced plan (``eq5`` is the paper's Eq. 5).
        measure_power_secs: CodeCarbon's sampling interval in seconds (paper: 1).
        load_window_s: the fleet telemetry's load signal for Algorithm 1: 0 (default) = the
            node's occupancy at decision time; > 0 = CPU utilisation of its quota over a
            sliding window of that many seconds. In the paper's closed loop the node that ran
            the last task is idle at the next decision but fully used over any window, so a
            window makes every mode rotate between nodes (Table V could not show 100%).
        slo_factor: CE-SLO's latency SLO as a multiple of the fastest node's predicted latency
            for the model (telemetry after warm-up); ignored when ``slo_ms`` is set.
        slo_ms: CE-SLO's latency SLO in ms for every model (None: ``slo_factor``).
        backend: ``local`` (the nodes are processes on this machine) or ``ray`` (actors on a
            Ray cluster; its address is given to :func:`reproduce`, not part of the digest).
        min_run_s: every run (and sweep point) keeps cycling its images until it has run
            ``n_images`` tasks AND its meter window has lasted this many seconds, so that the
            window holds several meter samples (0 = exactly ``n_images`` tasks; ``--quick``).
        calibration_windows: windows per node x model of the energy calibration (tasks pinned
            to one node; energy per inference per node with a CI). The rate every later task
            is charged at is pooled over them; 0 = no calibration, and tasks are charged at
            the nodes' power profiles (modelled).
        calibration_tasks: tasks per calibration window (at least; the window also lasts
            ``min_run_s`` and at least 2 x ``measure_power_secs``, so that it holds meter samples).
    """

    models: tuple[str, ...] = PAPER_MODELS
    n_images: int = 50
    repeats: int = 5
    runtime: RuntimeKind = "torch"
    attribution: AttributionKind = "cputime"
    meter: MeterKind = "codecarbon"
    ram_model: Literal["codecarbon", "paper"] = "codecarbon"
    fleet_file: str | None = None
    images_dir: str | None = None
    seed: int = 0
    mono_node: str | None = None
    sweep_points: int = 11
    sweep_tasks: int = 20
    sweep_model: str | None = None
    warmup_tasks: int = 2
    partition_cost: CostKind = "eq5"
    measure_power_secs: float = 1.0
    load_window_s: float = 0.0
    slo_factor: float = DEFAULT_SLO_FACTOR
    slo_ms: float | None = None
    backend: Literal["local", "ray"] = "local"
    min_run_s: float = 4.0
    calibration_windows: int = 3
    calibration_tasks: int = 20

    def __post_init__(self) -> None:
        _positive_int("n_images", self.n_images)
        _positive_int("repeats", self.repeats)
        _positive_int("sweep_tasks", self.sweep_tasks)
        if isinstance(self.warmup_tasks, bool) or not isinstance(self.warmup_tasks, int):
            raise ConfigError(f"warmup_tasks: must be an integer >= 0, got {self.warmup_tasks!r}")
        if self.warmup_tasks < 0:
            raise ConfigError(f"warmup_tasks: must be an integer >= 0, got {self.warmup_tasks!r}")
        if not isinstance(self.sweep_points, int) or self.sweep_points == 1:
            raise ConfigError(
                f"sweep_points: must be 0 (no sweep) or >= 2, got {self.sweep_points}"
            )
        if self.sweep_points < 0:
            raise ConfigError(
                f"sweep_points: must be 0 (no sweep) or >= 2, got {self.sweep_points}"
            )
        if not self.models:
            raise ConfigError("models: at least one model is needed")
        _choice("runtime", self.runtime, ("torch", "onnx"))
        _choice("attribution", self.attribution, ("cputime", "quota"))
        _choice("meter", self.meter, ("codecarbon", "fake"))
        _choice("ram_model", self.ram_model, ("codecarbon", "paper"))
        _choice("partition_cost", self.partition_cost, ("eq5", "macs", "measured"))
        if not self.load_window_s >= 0:
            raise ConfigError(
                f"load_window_s: must be >= 0 (0 = occupancy), got {self.load_window_s}"
            )
        _choice("backend", self.backend, ("local", "ray"))
        if not _positive_number(self.slo_factor):
            raise ConfigError(f"slo_factor: must be a number > 0, got {self.slo_factor!r}")
        if self.slo_ms is not None and not _positive_number(self.slo_ms):
            raise ConfigError(f"slo_ms: must be a number > 0 (ms), got {self.slo_ms!r}")
        if not (_positive_number(self.min_run_s) or self.min_run_s == 0):
            raise ConfigError(f"min_run_s: must be a number >= 0 (s), got {self.min_run_s!r}")
        if isinstance(self.calibration_windows, bool) or not isinstance(
            self.calibration_windows, int
        ):
            raise ConfigError(
                f"calibration_windows: must be an integer >= 0, got {self.calibration_windows!r}"
            )
        if self.calibration_windows < 0:
            raise ConfigError(
                f"calibration_windows: must be an integer >= 0, got {self.calibration_windows!r}"
            )
        _positive_int("calibration_tasks", self.calibration_tasks)
        if not self.measure_power_secs > 0:
            raise ConfigError(f"measure_power_secs: must be > 0, got {self.measure_power_secs}")

    @classmethod
    def quick(cls, **overrides: Any) -> ExperimentParams:
        """The ``--quick`` preset (a smoke test, not numbers): 20 images, 2 repeats, 6 sweep
        points of 5 tasks, no minimum run duration, 2 calibration windows of 8 tasks."""
        base: dict[str, Any] = {
            "n_images": 20,
            "repeats": 2,
            "sweep_points": 6,
            "sweep_tasks": 5,
            "min_run_s": 0.0,
            "calibration_windows": 2,
            "calibration_tasks": 8,
        }
        return cls(**{**base, **overrides})

    @property
    def resolved_sweep_model(self) -> str:
        """The model the weight sweep runs on."""
        if self.sweep_model is not None:
            return self.sweep_model
        return "mobilenet_v2" if "mobilenet_v2" in self.models else self.models[0]

    def with_(self, **changes: Any) -> ExperimentParams:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples become lists)."""
        data = asdict(self)
        data["models"] = list(self.models)
        return data

    def canonical_json(self) -> str:
        """Sorted-key JSON of the parameters plus the fleet file's content hash.

        The fleet file enters by content (sha256), not only by path, so editing it gives a new
        folder.
        """
        data = self.to_dict()
        data["fleet_sha256"] = _file_sha256(self.fleet_file) if self.fleet_file else None
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """First 12 hex digits of the SHA-256 of :meth:`canonical_json`."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:12]

    def folder(self, parent: str | Path = "results") -> Path:
        """The results folder of these parameters: ``<parent>/<digest>``."""
        return Path(parent) / self.digest()


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")


def _positive_number(value: object) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and math.isfinite(value) and value > 0  # type: ignore[arg-type, operator]


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: must be one of {', '.join(allowed)}, got {value!r}")


def _file_sha256(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read fleet file ({exc.strerror})") from None

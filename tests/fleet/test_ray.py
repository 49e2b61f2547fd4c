"""RayFleet on a real 3-node ``ray.cluster_utils.Cluster`` (head + 2 workers) on this machine.

One module-scoped cluster is shared by the few Ray tests (Ray costs seconds and ~2 GB to start).
Each Ray node advertises the custom resource ``edge:<node>`` of the paper's three nodes, so the
default ``placement="resource"`` pins each actor to its own Ray node. The last test stops the
cluster and checks that nothing is left running or in the home folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from carbonedge.errors import ConfigError
from carbonedge.fleet import (
    ModelRef,
    default_fleet,
    deploy_pipeline,
)
from carbonedge.fleet.ray_actor import ProfileMeter
from carbonedge.fleet.ray_placement import edge_resource, resolve_placement

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

HOME = Path.home()
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


# -- pure parts: no cluster ------------------------------------------------------------------------


def _ray_nodes() -> list[dict[str, Any]]:
    def node(nid: str, ip: str, res: dict[str, float]) -> dict[str, Any]:
        return {"NodeID": nid, "Alive": True, "NodeManagerAddress": ip, "Resources": res}

    return [
        node("bb", "10.0.0.2", {"CPU": 4, edge_resource("node-medium"): 1}),
        node("aa", "10.0.0.1", {"CPU": 4, "node:__internal_head__": 1}),
        node("cc", "10.0.0.3", {"CPU": 4, edge_resource("node-green"): 1}),
        {"NodeID": "dd", "Alive": False, "Resources": {edge_resource("node-high"): 1}},
    ]


def test_placement_by_resource_order_and_mapping() -> None:
    spec = default_fleet()
    nodes = _ray_nodes()
    with pytest.raises(ConfigError, match=r"'node-high'.*edge:node-high"):
        resolve_placement(spec, "resource", nodes)  # its only host is dead
    nodes[1]["Resources"][edge_resource("node-high")] = 1
    pins = resolve_placement(spec, "resource", nodes)
    assert {n: p.ray_node_id for n, p in pins.items()} == {
        "node-high": "aa",
        "node-medium": "bb",
        "node-green": "cc",
    }
    assert pins["node-green"].kind == "resource" and pins["node-green"].value == "edge:node-green"
    ordered = resolve_placement(spec, "order", nodes)
    assert [p.value for p in ordered.values()] == ["aa", "bb", "cc"]  # head first, then by IP
    mapped = resolve_placement(
        spec, {"node-high": "10.0.0.3", "node-medium": "aa", "node-green": "10.0.0.2"}, nodes
    )
    assert [p.value for p in mapped.values()] == ["cc", "aa", "bb"]
    assert all(p.kind == "node_id" for p in mapped.values())
    with pytest.raises(ConfigError, match=r"placement\['node-green'\] = '10.9.9.9'"):
        resolve_placement(
            spec, {"node-high": "aa", "node-medium": "bb", "node-green": "10.9.9.9"}, nodes
        )
    with pytest.raises(ConfigError, match="'node-green' is not mapped"):
        resolve_placement(spec, {"node-high": "aa", "node-medium": "bb"}, nodes)


def test_profile_meter_integrates_power_profile_over_cpu_time() -> None:
    meter = ProfileMeter(idle_w=2.0, max_w=6.0, cpu_quota=0.5)
    meter.start()
    x = 0
    for i in range(300_000):  # busy: uses CPU, so utilisation > 0
        x += i * i
    reading = meter.stop()
    # The details are rounded (utilisation to 4 decimals, CPU seconds to 6); the loop holds
    # the CPU for the whole window only on an idle host (utilisation 1), so compare within
    # the rounding rather than exactly.
    util = float(reading.info.details["utilisation"])
    cpu_s = float(reading.info.details["cpu_s"])
    assert 0.0 < util <= 1.0
    util_tol = 5e-5 + 5e-7 / (0.5 * reading.duration_s)
    assert util == pytest.approx(min(1.0, cpu_s / (0.5 * reading.duration_s)), abs=util_tol)
    (sample,) = reading.samples
    assert sample.cpu_w == pytest.approx(2.0 + 4.0 * util, abs=4.0 * 5e-5)  # idle + range x u
    assert reading.cpu_energy_kwh == pytest.approx(sample.cpu_w * reading.duration_s / 3.6e6)
    assert reading.method["cpu"] == "node-profile(cpu-time)"


# -- the shared cluster ----------------------------------------------------------------------------


class _Cluster:
    """A 3-node Ray cluster whose files live in a temp dir; ``stop()`` is idempotent."""

    def __init__(self) -> None:
        from ray.cluster_utils import Cluster

        self.home_before = sorted(os.listdir(HOME))
        self.tmp = tempfile.mkdtemp(prefix="ce-ray-")  # short: Ray's socket paths must fit
        self.saved_env = {k: os.environ.get(k) for k in (*RAY_ENV, "RAY_TMPDIR")}
        os.environ.update(RAY_ENV, RAY_TMPDIR=self.tmp)
        temp_dir = os.path.join(self.tmp, "ray")
        os.makedirs(temp_dir)
        common = {"num_cpus": 2, "object_store_memory": 100 * 2**20}
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                **common,
                "resources": {edge_resource("node-high"): 1},
                "include_dashboard": False,
                "temp_dir": temp_dir,
            },
        )
        for name in ("node-medium", "node-green"):
            self.cluster.add_node(**common, resources={edge_resource(name): 1})
        ray.init(address=self.cluster.address, include_dashboard=False, log_to_driver=False)
        self.node_of = {
            res[len("edge:") :]: n["NodeID"]
            for n in ray.nodes()
            for res in n["Resources"]
            if res.startswith("edge:")
        }
        self.stopped = False

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        ray.shutdown()
        self.cluster.shutdown()
        for key, value in self.saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[_Cluster]:
    c = _Cluster()
    try:
        yield c
    finally:
        c.stop()


def _images(n: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 1, 3, 224, 224)).astype(np.float32)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pinned_actors_run_paper_model_and_meter_energy(cluster: _Cluster) -> None:
    from carbonedge.fleet.ray_backend import RayFleet, RayTaskResult

    spec = default_fleet()
    with RayFleet(spec, meter={"node-green": "codecarbon"}) as fleet:
        assert fleet.placement() == cluster.node_of  # each actor reports its pinned Ray node
        assert len(set(cluster.node_of.values())) == 3
        key = fleet.deploy(ModelRef("mobilenet_v2"), spec.names)
        x = _images(1)[0]
        futures = [fleet.submit(n, key, x) for n in spec.names for _ in range(2)]
        results = [f.result(timeout=120) for f in futures]
        for r in results:
            assert isinstance(r, RayTaskResult)
            assert r.ray_node_id == cluster.node_of[r.node]
            assert r.output.shape == (1, 1000)
            assert r.exec_ms > 0 and r.cpu_s > 0 and r.latency_ms >= r.exec_ms
        # same seeded weights everywhere: every node computes the same logits
        for r in results[1:]:
            np.testing.assert_allclose(r.output, results[0].output, rtol=1e-4, atol=1e-4)
        states = {s.name: s for s in fleet.node_states()}
        assert set(states) == set(spec.names)
        assert all(s.avg_time_s > 0 and s.tasks_in_flight == 0 for s in states.values())
        readings = fleet.energy_readings()
    assert set(readings) == set(spec.names)
    assert readings["node-high"].method["cpu"] == "node-profile(cpu-time)"
    assert readings["node-green"].info.meter == "codecarbon"
    assert all(r.energy_kwh > 0 and r.duration_s > 0 for r in readings.values())
    assert set(fleet.final_readings) == set(spec.names)  # read once more on stop


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pipeline_through_object_store_equals_monolithic(cluster: _Cluster) -> None:
    import torch

    from carbonedge.fleet.ray_backend import RayFleet
    from carbonedge.models import build_model
    from carbonedge.partition.chain import find_chain
    from carbonedge.partition.segments import build_segments

    torch.set_num_threads(1)
    model = build_model("mobilenet_v2", seed=0)
    n_units = len(find_chain(model))
    segments = build_segments(model, [n_units // 3, 2 * n_units // 3])
    x = _images(1)[0]
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    order = ["node-green", "node-medium", "node-high"]
    with RayFleet(default_fleet()) as fleet:
        for runtime in ("torch", "onnx"):
            pipe = deploy_pipeline(fleet, segments, order, runtime, name=f"mnv2-{runtime}")
            res = fleet.submit_pipeline(pipe, x).result(timeout=120)
            tol = 1e-5 if runtime == "torch" else 1e-3
            np.testing.assert_allclose(res.output, expected, rtol=tol, atol=tol)
            assert [s.node for s in res.stages] == order
            assert [s.ray_node_id for s in res.stages] == [cluster.node_of[n] for n in order]
            # activations stayed on the object store: intermediate stages bring back no output
            assert [s.output.size for s in res.stages[:-1]] == [0, 0]
            assert res.handoff_ms >= 0 and res.latency_ms > res.exec_ms


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killed_actor_tasks_are_redispatched_nothing_lost(
    cluster: _Cluster, tmp_path: Path
) -> None:
    """The engine on a Ray fleet: an actor killed mid-run loses no task, records none twice."""
    from carbonedge.engine import EngineConfig, EngineSettings, open_engine
    from carbonedge.fleet.ray_backend import RayFleet

    spec = default_fleet()
    with RayFleet(spec, restart=True) as fleet:
        key = fleet.deploy(ModelRef("mobilenet_v2"), spec.names)
        victim = fleet.actor("node-medium")
        killed = threading.Event()
        seen: list[str] = []

        def on_result(f: Any) -> None:
            seen.append(f.result().task_id)
            if len(seen) == 4 and not killed.is_set():
                ray.kill(victim, no_restart=True)  # mid-run: node-medium has a task running
                killed.set()

        settings = EngineSettings(
            meter="fake",
            window_s=0.0,
            ledger=tmp_path / "ledger.sqlite",
            policy="paper",
            mode="performance",
            engine=EngineConfig(max_wait_s=120.0, max_attempts=3),
        )
        with open_engine(settings, fleet=fleet) as engine:
            futures = []
            for i, b in enumerate(_images(24)):
                futures.append(engine.submit(b, key, task_id=f"t{i}"))
                futures[-1].add_done_callback(on_result)
            outs = [f.result(timeout=240) for f in futures]
            redispatched = engine.stats().get("redispatched", 0)
        assert killed.is_set()
        assert [o.task_id for o in outs] == [f"t{i}" for i in range(24)]
        assert len(seen) == len(set(seen)) == 24  # each task recorded exactly once
        assert all(o.recorded for o in outs)
        assert redispatched >= 1 and max(o.attempts for o in outs) >= 2
        # restart=True: a new actor is pinned to the same Ray node, models redeployed
        for _ in range(600):
            medium = next(h for h in fleet.health() if h.name == "node-medium")
            if medium.up:
                break
            threading.Event().wait(0.1)
        assert medium.up and medium.restarts == 1, medium
        again = fleet.submit("node-medium", key, _images(1)[0]).result(timeout=120)
        assert again.ray_node_id == cluster.node_of["node-medium"]  # type: ignore[attr-defined]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_reproduce_runs_on_the_ray_backend(cluster: _Cluster, tmp_path: Path) -> None:
    """``reproduce --backend ray --address ...``: the same experiment through the engine on the
    3-node cluster; every task ran on the Ray node of its edge node and has its ledger row."""
    import json
    import sqlite3

    from carbonedge.experiments import ExperimentParams, reproduce

    params = ExperimentParams(
        models=("mobilenetv4_conv_small",),
        n_images=2,
        repeats=1,
        sweep_points=0,
        warmup_tasks=1,
        meter="fake",
        backend="ray",
        min_run_s=0.0,
        calibration_windows=1,
        calibration_tasks=2,
    )
    outcome = reproduce(params, tmp_path, progress=False, address=cluster.cluster.address)
    result = json.loads((outcome.folder / "result.json").read_text())
    runs = {r["config"]: r for r in result["runs"]}
    assert runs["Monolithic"]["usage_pct"]["node-medium"] == 100.0
    assert all(v == pytest.approx(100 / 3) for v in runs["AMP4EC"]["usage_pct"].values())
    db = sqlite3.connect(outcome.folder / "ledger.sqlite")
    try:
        count = db.execute("SELECT COUNT(*) FROM tasks WHERE run_id LIKE '%/r0'").fetchone()[0]
    finally:
        db.close()
    assert count == sum(r["n_tasks"] * (3 if r["config"] == "AMP4EC" else 1) for r in runs.values())


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_each_node_meters_itself_with_its_own_sensor(cluster: _Cluster, tmp_path: Path) -> None:
    """Issue 15: every node detects and reads its own sensor, inside its own actor.

    Each node gets a fixture tree laid out as its device documents it (``meter="auto:<root>"``):
    node-high a RAPL powercap tree (kernel powercap.rst), node-medium a Jetson Orin Nano's
    INA3221 hwmon tree (kernel hwmon/ina3221.rst, Jetson Linux guide), node-green a Raspberry
    Pi 5 whose ``usr/bin/vcgencmd`` prints a real ``pmic_read_adc`` output.
    """
    from carbonedge.carbon.sensors import parse_pmic_adc
    from carbonedge.carbon.sensors.fixtures import (
        PI5_PMIC_ADC_SAMPLE,
        set_rapl_energy,
        write_jetson_hwmon,
        write_pi5,
        write_rapl,
    )
    from carbonedge.fleet.ray_backend import RayFleet

    roots = {n: tmp_path / n for n in ("node-high", "node-medium", "node-green")}
    write_rapl(roots["node-high"])
    write_jetson_hwmon(roots["node-medium"])
    write_pi5(roots["node-green"])
    spec = default_fleet()
    with RayFleet(spec, meter={n: f"auto:{root}" for n, root in roots.items()}) as fleet:
        assert fleet.placement() == cluster.node_of
        fleet.energy_readings()  # every actor is up and metering: start a fresh window
        set_rapl_energy(roots["node-high"], "intel-rapl:0", 10_000_000 + 25_000_000)  # +25 J
        set_rapl_energy(roots["node-high"], "intel-rapl:0:2", 2_000_000 + 5_000_000)  # dram +5 J
        threading.Event().wait(1.5)  # a poll or two of the power rails
        readings = fleet.energy_readings()
    high, medium, green = (readings[n] for n in ("node-high", "node-medium", "node-green"))
    assert high.method == {"cpu": "rapl", "gpu": "none", "ram": "rapl"}
    assert (high.cpu_energy_kwh * 3.6e6, high.ram_energy_kwh * 3.6e6) == pytest.approx((25, 5))
    inc = "included-in-cpu"
    assert medium.method == {"cpu": "ina3221", "gpu": inc, "ram": inc}
    vdd_in_w = 5072 * 1064 / 1e6  # the fixture's VDD_IN: mV x mA
    assert medium.cpu_energy_kwh * 3.6e6 == pytest.approx(vdd_in_w * medium.duration_s, rel=0.01)
    assert green.method == {"cpu": "pi5-pmic", "gpu": inc, "ram": "pi5-pmic"}
    rails_w = parse_pmic_adc(PI5_PMIC_ADC_SAMPLE)
    board_w = sum(w for r, w in rails_w.items() if r not in ("HDMI", "DDR_VDD2", "DDR_VDDQ"))
    assert green.cpu_energy_kwh * 3.6e6 == pytest.approx(board_w * green.duration_s, rel=0.01)
    for name, reading in readings.items():
        assert reading.info.meter == "sensors" and reading.duration_s > 1.0
        assert reading.info.details["root"] == str(roots[name])  # its own tree, its own reader


def _ray_processes() -> list[str]:
    me = psutil.Process()
    names = []
    for p in me.children(recursive=True):
        try:
            names.append(" ".join(p.cmdline())[:120])
        except psutil.Error:
            continue
    return [n for n in names if "raylet" in n or "gcs_server" in n or "ray::" in n]


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_zz_after_shutdown_nothing_running_or_in_home(cluster: _Cluster) -> None:
    assert _ray_processes(), "the cluster should be running before this test stops it"
    cluster.stop()
    for _ in range(600):  # up to 60 s for Ray's processes to exit on a busy host
        if not _ray_processes():
            break
        threading.Event().wait(0.1)
    assert _ray_processes() == []
    assert not (HOME / ".ray").exists()
    assert sorted(os.listdir(HOME)) == cluster.home_before
    assert not os.path.exists(cluster.tmp)

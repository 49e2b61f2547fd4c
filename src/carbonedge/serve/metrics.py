"""The endpoint's Prometheus metrics, with ``prometheus_client`` (one registry per app).

Per request the app updates a counter and a histogram (microseconds). Figures that exist
elsewhere already — the engine's queue and counters, the meter windows' totals, each node's
health and intensity — are read when ``/metrics`` is scraped, by a collector, never copied.
Energy and carbon series carry a ``method`` label saying how they were obtained.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from carbonedge.engine import Engine

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS_MS", "ServeMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_MS = (5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500, 5000, 10000)


class ServeMetrics:
    """Request counters of one app plus a collector over its engine."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "carbonedge_requests",
            "Inference requests answered, by node and HTTP status code.",
            ["node", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "carbonedge_request_latency_ms",
            "Server-side latency of successful inference requests, ms.",
            buckets=LATENCY_BUCKETS_MS,
            registry=self.registry,
        )
        self.overhead = Counter(
            "carbonedge_server_overhead_ms",
            "Sum over successful requests of latency minus node execution time, ms.",
            registry=self.registry,
        )
        self.energy = Counter(
            "carbonedge_request_energy_kwh",
            "Estimated active energy of served requests, kWh; method: window-cputime (CPU-time "
            "share of the last closed meter window) or power-profile (before the first window).",
            ["node", "method"],
            registry=self.registry,
        )
        self.carbon = Counter(
            "carbonedge_request_gco2",
            "Estimated carbon of served requests, gCO2 (Eq. 2: energy x intensity x PUE).",
            ["node", "method"],
            registry=self.registry,
        )
        self.cpu = Counter(
            "carbonedge_request_cpu_seconds",
            "CPU seconds of served inferences on each node (node process, time.process_time).",
            ["node"],
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(engine))

    def observe(
        self,
        node: str,
        latency_ms: float,
        exec_ms: float,
        cpu_s: float,
        energy_kwh: float,
        gco2: float,
        method: str,
    ) -> None:
        """Record one successful request."""
        self.requests.labels(node, "200").inc()
        self.latency.observe(latency_ms)
        self.overhead.inc(max(0.0, latency_ms - exec_ms))
        self.energy.labels(node, method).inc(energy_kwh)
        self.carbon.labels(node, method).inc(gco2)
        self.cpu.labels(node).inc(cpu_s)

    def error(self, code: int, node: str = "none") -> None:
        """Record one request answered with an error status."""
        self.requests.labels(node, str(code)).inc()

    def requests_total(self) -> int:
        """Requests answered so far (any status)."""
        return int(
            sum(
                s.value
                for m in self.requests.collect()
                for s in m.samples
                if s.name.endswith("_total")
            )
        )

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)


class _EngineCollector(Collector):
    """Reads the engine, its meter windows and its fleet at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> list[Metric]:
        return []  # collected only at scrape time (the registry then calls collect)

    def collect(self) -> Iterator[Metric]:
        engine = self._engine
        stats = engine.stats()
        yield _gauge(
            "carbonedge_queue_depth", "Tasks waiting for an eligible node.", stats["queued"]
        )
        yield _gauge(
            "carbonedge_tasks_in_flight", "Tasks running on the nodes.", stats["in_flight"]
        )
        refused = CounterMetricFamily(
            "carbonedge_refused",
            "Tasks refused: overloaded (the engine's queue was full) or no_node (no eligible "
            "node within the task's wait).",
            labels=["reason"],
        )
        refused.add_metric(["overloaded"], stats.get("refused_overloaded", 0))
        refused.add_metric(["no_node"], stats.get("refused_no_node", 0))
        yield refused
        yield _counter(
            "carbonedge_redispatches",
            "Tasks re-dispatched to another node after their node went down.",
            stats.get("redispatched", 0),
        )
        totals = engine.rates.totals
        host = CounterMetricFamily(
            "carbonedge_host_energy_kwh",
            "Host energy measured by the meter over all closed windows, kWh, by component and "
            "method (rapl, nvml: measured; cpu-load-model, constant: CodeCarbon's model).",
            labels=["component", "method"],
        )
        for (component, method), value in sorted(totals.host_kwh.items()):
            host.add_metric([component, method], value)
        yield host
        nodes = CounterMetricFamily(
            "carbonedge_node_energy_kwh",
            "Active host energy attributed to each node by CPU-time share, kWh.",
            labels=["node", "method"],
        )
        for name, value in sorted(totals.node_kwh.items()):
            nodes.add_metric([name, "cputime"], value)
        yield nodes
        yield _counter(
            "carbonedge_idle_energy_kwh",
            "Static host energy (idle CPU baseline, constant RAM power), kWh; in no node.",
            totals.idle_kwh,
        )
        yield _counter(
            "carbonedge_other_energy_kwh",
            "Active host energy of processes outside the nodes, kWh.",
            totals.other_kwh,
        )
        yield _counter(
            "carbonedge_meter_windows", "Meter windows closed and attributed.", totals.windows
        )
        yield _counter(
            "carbonedge_meter_errors",
            "Meter windows lost to a meter or attribution error.",
            totals.errors,
        )
        up = GaugeMetricFamily(
            "carbonedge_node_up", "1 if the node is up, else 0.", labels=["node"]
        )
        restarts = CounterMetricFamily(
            "carbonedge_node_restarts", "Restarts of the node after a fault.", labels=["node"]
        )
        for h in engine.fleet.health():
            up.add_metric([h.name], 1.0 if h.up else 0.0)
            restarts.add_metric([h.name], h.restarts)
        yield up
        yield restarts
        intensity = GaugeMetricFamily(
            "carbonedge_node_intensity_g_per_kwh",
            "Grid carbon intensity each node's tasks are charged at now, gCO2/kWh.",
            labels=["node", "source"],
        )
        for name, reading in engine.intensity.readings().items():
            source = reading.source + ("+fallback" if reading.fallback else "")
            intensity.add_metric([name, source], reading.g_per_kwh)
        yield intensity
        if engine.ledger is not None:
            yield _counter(
                "carbonedge_ledger_rows",
                "Rows committed to the ledger.",
                engine.ledger.rows_written,
            )
            yield _counter(
                "carbonedge_ledger_errors",
                "Ledger writes that failed (the rows' requests were answered unrecorded).",
                engine.ledger.errors,
            )


def _gauge(name: str, help_text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help_text, value=value)


def _counter(name: str, help_text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, help_text, value=value)

"""Counters of the endpoint, rendered in the Prometheus text exposition format (v0.0.4).

Per request the service calls :meth:`ServeMetrics.observe` (a lock, a few dict updates, one
append to a bounded deque): microseconds. Rendering happens only when ``/metrics`` is scraped.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping

import numpy as np

from carbonedge.serve.rates import WindowTotals

__all__ = ["LATENCY_QUANTILES", "ServeMetrics", "escape_label"]

LATENCY_QUANTILES = (0.5, 0.9, 0.99)


def escape_label(value: str) -> str:
    """Escape a label value: backslash, double quote and newline (exposition format)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def _num(value: float) -> str:
    return repr(float(value))


class ServeMetrics:
    """Requests, latency and energy/carbon estimates of the served requests.

    ``window`` recent request latencies (ms) feed the summary's quantiles; count and sum cover
    every request since start.
    """

    def __init__(self, window: int = 1024) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}  # (node, code) -> count
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._latency_count = 0
        self._latency_sum_ms = 0.0
        self._overhead_sum_ms = 0.0
        self._energy_kwh: dict[tuple[str, str], float] = {}  # (node, method) -> kWh
        self._carbon_g: dict[tuple[str, str], float] = {}
        self._cpu_s: dict[str, float] = {}
        self._redispatches = 0

    def observe(
        self,
        node: str,
        latency_ms: float,
        exec_ms: float,
        cpu_s: float,
        energy_kwh: float,
        gco2: float,
        method: str,
        attempts: int,
    ) -> None:
        """Record one successful request."""
        with self._lock:
            key = (node, "200")
            self._requests[key] = self._requests.get(key, 0) + 1
            self._latency_ms.append(latency_ms)
            self._latency_count += 1
            self._latency_sum_ms += latency_ms
            self._overhead_sum_ms += latency_ms - exec_ms
            mkey = (node, method)
            self._energy_kwh[mkey] = self._energy_kwh.get(mkey, 0.0) + energy_kwh
            self._carbon_g[mkey] = self._carbon_g.get(mkey, 0.0) + gco2
            self._cpu_s[node] = self._cpu_s.get(node, 0.0) + cpu_s
            self._redispatches += attempts - 1

    def error(self, code: int, node: str = "none") -> None:
        """Record one failed request with its HTTP status code."""
        with self._lock:
            key = (node, str(code))
            self._requests[key] = self._requests.get(key, 0) + 1

    def requests_total(self) -> int:
        """Requests answered so far (any status)."""
        with self._lock:
            return sum(self._requests.values())

    def render(self, totals: WindowTotals, nodes_up: Mapping[str, bool]) -> str:
        """The exposition text: HELP/TYPE comments, then ``name{labels} value`` lines."""
        with self._lock:
            requests = dict(self._requests)
            latencies = np.fromiter(self._latency_ms, dtype=np.float64)
            count, total_ms = self._latency_count, self._latency_sum_ms
            overhead_ms = self._overhead_sum_ms
            energy, carbon = dict(self._energy_kwh), dict(self._carbon_g)
            cpu_s, redispatches = dict(self._cpu_s), self._redispatches
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, rows: Iterable[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {_num(value)}" for labels, value in rows)

        family(
            "carbonedge_requests_total",
            "counter",
            "Inference requests answered, by node and HTTP status code.",
            ((_labels(node=n, code=c), v) for (n, c), v in sorted(requests.items())),
        )
        quantiles = (
            np.quantile(latencies, LATENCY_QUANTILES) if latencies.size else [float("nan")] * 3
        )
        name = "carbonedge_request_latency_ms"
        out.append(
            f"# HELP {name} Server-side latency of successful inference requests, ms "
            f"(quantiles over the last {self._latency_ms.maxlen} requests)."
        )
        out.append(f"# TYPE {name} summary")
        for q, v in zip(LATENCY_QUANTILES, quantiles, strict=True):
            out.append(f"{name}{_labels(quantile=str(q))} {_num(v)}")
        out.append(f"{name}_sum {_num(total_ms)}")
        out.append(f"{name}_count {_num(count)}")
        family(
            "carbonedge_server_overhead_ms_total",
            "counter",
            "Sum over successful requests of latency minus node execution time, ms.",
            [("", overhead_ms)],
        )
        family(
            "carbonedge_redispatches_total",
            "counter",
            "Requests re-dispatched to another node after their node went down.",
            [("", float(redispatches))],
        )
        family(
            "carbonedge_request_cpu_seconds_total",
            "counter",
            "CPU seconds of served inferences on each node (node process, time.process_time).",
            ((_labels(node=n), v) for n, v in sorted(cpu_s.items())),
        )
        family(
            "carbonedge_request_energy_kwh_total",
            "counter",
            "Estimated active energy of served requests, kWh; method: window-cputime (CPU-time "
            "share of the last closed meter window) or power-profile (before the first window).",
            ((_labels(node=n, method=m), v) for (n, m), v in sorted(energy.items())),
        )
        family(
            "carbonedge_request_gco2_total",
            "counter",
            "Estimated carbon of served requests, gCO2 (Eq. 2: energy x intensity x PUE).",
            ((_labels(node=n, method=m), v) for (n, m), v in sorted(carbon.items())),
        )
        family(
            "carbonedge_host_energy_kwh_total",
            "counter",
            "Host energy measured by the meter over all closed windows, kWh, by component and "
            "method (rapl, nvml: measured; cpu-load-model, constant: CodeCarbon's model).",
            ((_labels(component=c, method=m), v) for (c, m), v in sorted(totals.host_kwh.items())),
        )
        family(
            "carbonedge_node_energy_kwh_total",
            "counter",
            "Active host energy attributed to each node by CPU-time share, kWh (all its CPU "
            "work, served requests or not).",
            ((_labels(node=n, method="cputime"), v) for n, v in sorted(totals.node_kwh.items())),
        )
        family(
            "carbonedge_idle_energy_kwh_total",
            "counter",
            "Static host energy (idle CPU baseline, constant RAM power), kWh; in no node.",
            [("", totals.idle_kwh)],
        )
        family(
            "carbonedge_other_energy_kwh_total",
            "counter",
            "Active host energy of processes outside the nodes, kWh.",
            [("", totals.other_kwh)],
        )
        family(
            "carbonedge_meter_windows_total",
            "counter",
            "Meter windows closed and attributed.",
            [("", float(totals.windows))],
        )
        family(
            "carbonedge_meter_errors_total",
            "counter",
            "Meter windows lost to a meter or attribution error.",
            [("", float(totals.errors))],
        )
        family(
            "carbonedge_node_up",
            "gauge",
            "1 if the node is up, else 0.",
            ((_labels(node=n), 1.0 if up else 0.0) for n, up in sorted(nodes_up.items())),
        )
        return "\n".join(out) + "\n"

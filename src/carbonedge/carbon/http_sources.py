"""Carbon-intensity providers over HTTP: Electricity Maps v3 and WattTime v3.

Both use stdlib ``urllib`` with a timeout, keep a TTL cache on the instance, and on failure
(HTTP 401/429/other, timeout, bad JSON, missing field) raise :class:`IntensityError` or, when
configured, fall back to the zone's last known value and then to a static value. A reading
made from a fallback says so (``fallback=True`` and the reason).

Recorded formats (see docs/carbon-monitor.md for the references):

- Electricity Maps: ``GET {base}/carbon-intensity/latest?zone=Z`` with header ``auth-token``
  -> ``{"zone", "carbonIntensity", "datetime", ...}``; ``/history`` -> ``{"history": [...]}``,
  ``/forecast`` -> ``{"forecast": [...]}``, items with ``carbonIntensity`` and ``datetime``.
- WattTime: ``GET {base}/login`` with HTTP basic auth -> ``{"token"}``; then
  ``GET {base}/v3/forecast|historical?region=R&signal_type=co2_moer`` with
  ``Authorization: Bearer`` -> ``{"data": [{"point_time", "value"}], "meta": {"units":
  "lbs_co2_per_mwh"}}``. 1 lb/MWh = 0.45359237 g/kWh. The signal is marginal (MOER).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from carbonedge.carbon.errors import IntensityError
from carbonedge.carbon.intensity import IntensityKind, IntensityReading, utc

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237


def get_json(url: str, headers: dict[str, str], timeout_s: float) -> Any:
    """GET ``url`` and decode JSON; every failure becomes an :class:`IntensityError`."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    shown = url.split("?")[0]
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            reason = f"HTTP {exc.code}: unauthorized (check the token or credentials)"
        elif exc.code == 429:
            retry = exc.headers.get("Retry-After") if exc.headers else None
            reason = "HTTP 429: rate limited" + (f", retry after {retry} s" if retry else "")
        else:
            reason = f"HTTP {exc.code} {exc.reason}"
        raise IntensityError(f"{shown}: {reason}") from exc
    except TimeoutError as exc:
        raise IntensityError(f"{shown}: timed out after {timeout_s} s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise IntensityError(f"{shown}: timed out after {timeout_s} s") from exc
        raise IntensityError(f"{shown}: cannot connect: {exc.reason}") from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise IntensityError(f"{shown}: response is not valid JSON: {body[:80]!r}") from exc


def field(obj: Any, name: str, where: str) -> Any:
    """``obj[name]`` or an :class:`IntensityError` naming the missing field."""
    if not isinstance(obj, dict) or obj.get(name) is None:
        raise IntensityError(f"{where}: response has no field {name!r}")
    return obj[name]


def parse_time(text: Any, where: str) -> datetime:
    """An ISO 8601 timestamp from a response, as UTC."""
    try:
        return utc(datetime.fromisoformat(str(text)))
    except ValueError as exc:
        raise IntensityError(f"{where}: bad timestamp {text!r}") from exc


def pick(points: list[tuple[datetime, float]], at: datetime, where: str) -> tuple[datetime, float]:
    """The last point at or before ``at`` (or the first point if ``at`` precedes them all)."""
    if not points:
        raise IntensityError(f"{where}: response has no data points")
    ordered = sorted(points)
    chosen = ordered[0]
    for point in ordered:
        if point[0] <= at:
            chosen = point
    return chosen


class _CachedFallbackSource:
    """TTL cache and fallback policy shared by the HTTP sources (state lives on the instance)."""

    name = "http"
    kind: IntensityKind = "average"

    def __init__(
        self,
        ttl_s: float,
        fallback_to_last: bool,
        fallback_g_per_kwh: float | None,
        clock: Callable[[], float],
    ) -> None:
        self.ttl_s = ttl_s
        self.fallback_to_last = fallback_to_last
        self.fallback_g_per_kwh = fallback_g_per_kwh
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._last: dict[str, IntensityReading] = {}

    def _cached(self, key: tuple[str, str], fetch: Callable[[], Any]) -> Any:
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = fetch()
        self._cache[key] = (now + self.ttl_s, value)
        return value

    def _read(self, zone: str, at: datetime | None) -> IntensityReading:
        raise NotImplementedError

    def intensity(self, zone: str, at: datetime | None = None) -> IntensityReading:
        """The provider's value, or a fallback value marked as such."""
        try:
            reading = self._read(zone, at)
        except IntensityError as exc:
            last = self._last.get(zone)
            if self.fallback_to_last and last is not None:
                return replace(last, fallback=True, fallback_reason=str(exc))
            if self.fallback_g_per_kwh is not None:
                return IntensityReading(
                    self.fallback_g_per_kwh,
                    zone,
                    utc(at),
                    f"{self.name}:static-fallback",
                    self.kind,
                    fallback=True,
                    fallback_reason=str(exc),
                )
            raise
        self._last[zone] = reading
        return reading


class ElectricityMapsSource(_CachedFallbackSource):
    """Electricity Maps API v3 (average, lifecycle intensity by default), zone e.g. ``DE``."""

    name = "electricitymaps"
    kind: IntensityKind = "average"

    def __init__(
        self,
        token: str | None,
        base_url: str = "https://api.electricitymap.org/v3",
        *,
        timeout_s: float = 5.0,
        ttl_s: float = 300.0,
        fallback_to_last: bool = False,
        fallback_g_per_kwh: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl_s, fallback_to_last, fallback_g_per_kwh, clock)
        self.token = token
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, endpoint: str, zone: str) -> Any:
        query = urllib.parse.urlencode({"zone": zone})
        headers = {"auth-token": self.token} if self.token else {}
        url = f"{self.base_url}/carbon-intensity/{endpoint}?{query}"
        return get_json(url, headers, self.timeout_s)

    def _read(self, zone: str, at: datetime | None) -> IntensityReading:
        now = utc(None)
        when = utc(at)
        if at is None or abs(when - now) <= timedelta(minutes=30):
            where = "electricitymaps:latest"
            body = self._cached((zone, "latest"), lambda: self._get("latest", zone))
            value = float(field(body, "carbonIntensity", where))
            stamp = parse_time(field(body, "datetime", where), where)
            return IntensityReading(value, zone, stamp if at is None else when, where, self.kind)
        endpoint, key = ("history", "history") if when < now else ("forecast", "forecast")
        where = f"electricitymaps:{endpoint}"
        body = self._cached((zone, endpoint), lambda: self._get(endpoint, zone))
        items = field(body, key, where)
        if not isinstance(items, list):
            raise IntensityError(f"{where}: field {key!r} is not a list")
        points = [
            (
                parse_time(field(p, "datetime", where), where),
                float(field(p, "carbonIntensity", where)),
            )
            for p in items
        ]
        _, value = pick(points, when, where)
        return IntensityReading(value, zone, when, where, self.kind)


class WattTimeSource(_CachedFallbackSource):
    """WattTime API v3, marginal CO2 (``co2_moer``) converted to gCO2/kWh; region e.g.
    ``CAISO_NORTH``. Give ``token`` or ``username`` + ``password`` (login on first use and
    again once after a 401, since tokens expire)."""

    name = "watttime"
    kind: IntensityKind = "marginal"

    def __init__(
        self,
        token: str | None = None,
        base_url: str = "https://api.watttime.org",
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
        ttl_s: float = 300.0,
        fallback_to_last: bool = False,
        fallback_g_per_kwh: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl_s, fallback_to_last, fallback_g_per_kwh, clock)
        if token is None and (username is None or password is None):
            raise IntensityError("WattTime needs a token or a username and password")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._token = token
        self._username = username
        self._password = password

    def _login(self) -> str:
        pair = f"{self._username}:{self._password}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        body = get_json(f"{self.base_url}/login", headers, self.timeout_s)
        token = str(field(body, "token", "watttime:login"))
        self._token = token
        return token

    def _get(self, endpoint: str, params: dict[str, str]) -> Any:
        query = urllib.parse.urlencode({**params, "signal_type": "co2_moer"})
        url = f"{self.base_url}/v3/{endpoint}?{query}"
        token = self._token or self._login()
        try:
            return get_json(url, {"Authorization": f"Bearer {token}"}, self.timeout_s)
        except IntensityError as exc:
            if "HTTP 401" not in str(exc) or self._username is None:
                raise
            return get_json(url, {"Authorization": f"Bearer {self._login()}"}, self.timeout_s)

    def _read(self, zone: str, at: datetime | None) -> IntensityReading:
        when = utc(at)
        now = utc(None)
        if at is None or when >= now - timedelta(minutes=5):
            endpoint, params = (
                "forecast",
                {"region": zone, "horizon_hours": "0" if at is None else "72"},
            )
            key = "forecast0" if at is None else "forecast72"
        else:
            endpoint = "historical"
            start = (when - timedelta(minutes=5)).isoformat()
            end = (when + timedelta(minutes=5)).isoformat()
            params, key = {"region": zone, "start": start, "end": end}, f"hist:{when.isoformat()}"
        where = f"watttime:{endpoint}"
        body = self._cached((zone, key), lambda: self._get(endpoint, params))
        units = field(field(body, "meta", where), "units", where)
        if units != "lbs_co2_per_mwh":
            raise IntensityError(f"{where}: expected units 'lbs_co2_per_mwh', got {units!r}")
        data = field(body, "data", where)
        if not isinstance(data, list):
            raise IntensityError(f"{where}: field 'data' is not a list")
        points = [
            (parse_time(field(p, "point_time", where), where), float(field(p, "value", where)))
            for p in data
        ]
        # the forecast's first point is the current interval; otherwise the point covering `at`
        stamp, lbs = min(points) if at is None and points else pick(points, when, where)
        g = lbs * LBS_PER_MWH_TO_G_PER_KWH
        return IntensityReading(g, zone, stamp if at is None else when, where, self.kind)

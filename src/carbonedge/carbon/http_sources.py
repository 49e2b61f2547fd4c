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
import binascii
import contextlib
import functools
import http.client
import json
import math
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final, cast

from carbonedge.carbon.errors import IntensityError
from carbonedge.carbon.intensity import IntensityKind, IntensityReading, check_g_per_kwh, utc

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237

MAX_RESPONSE_BYTES: Final = 1024 * 1024
"""Largest response body read from an intensity API, in bytes (1 MiB; a week of hourly
forecast is about 20 KiB). A larger ``Content-Length`` is refused before the body is read, and a
body that grows past it while being read is cut there."""

MAX_TIMEOUT_S: Final = 300.0
"""Largest total time budget (``timeout_s``) one request may be given, in seconds."""

# Headers that carry credentials: never re-sent when a redirect leaves the origin.
SENSITIVE_HEADERS: Final = frozenset(
    {"auth-token", "authorization", "proxy-authorization", "cookie", "x-api-key"}
)
_CHUNK_BYTES: Final = 64 * 1024


def check_timeout(timeout_s: object, where: str) -> float:
    """``timeout_s`` (the total time budget of a request, s) or an IntensityError: it must be a
    finite number > 0 and at most :data:`MAX_TIMEOUT_S`."""
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
        raise IntensityError(f"{where}: timeout must be a number of seconds, got {timeout_s!r}")
    if not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise IntensityError(
            f"{where}: timeout must be > 0 and <= {MAX_TIMEOUT_S:g} s, got {timeout_s!r}"
        )
    return float(timeout_s)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def shown_url(url: str) -> str:
    """``url`` fit for an error message: no query, fragment or ``user:password@``, one line."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    text = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _secrets(headers: dict[str, str]) -> list[str]:
    """The credential strings in ``headers`` (and their decoded parts) to keep out of messages."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() not in SENSITIVE_HEADERS:
            continue
        found.append(value)
        scheme, _, rest = value.partition(" ")
        if rest:
            found.append(rest)
        if scheme.lower() == "basic" and rest:
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                pair = base64.b64decode(rest, validate=True).decode()
                found.extend([pair, *pair.split(":", 1)])
    # A very short secret would blank out ordinary words; such secrets are never echoed by us.
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class _SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but drop credential headers when one leaves the origin (scheme, host,
    port), and refuse redirects to anything but http(s). A token for api.example must never
    reach the host a compromised or misconfigured API redirects to."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.HTTPError(
                shown_url(req.full_url), code, f"redirect to a {scheme!r} URL refused", headers, fp
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in [k for k in new.headers if k.lower() in SENSITIVE_HEADERS]:
                del new.headers[name]
        return new


class _Deadline:
    """The total time budget of one request. When it runs out, every socket the request opened
    is shut down, which ends a blocked read at once: a server that answers one byte per second
    cannot stretch a request past ``timeout_s`` (a per-read timeout would never fire)."""

    def __init__(self, timeout_s: float) -> None:
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            # socket.socket.shutdown, not SSLSocket.shutdown: end the reads, leave TLS state be
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def track(self, sock: socket.socket | None) -> None:
        with self._lock:
            if self.expired:
                raise TimeoutError("time budget spent")
            if sock is not None:
                self._sockets.append(sock)


class _TrackedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        self._deadline.track(None)
        super().connect()
        self._deadline.track(self.sock)


class _TrackedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        self._deadline.track(None)
        super().connect()  # TLS handshake: bounded per network operation by the timeout
        self._deadline.track(self.sock)


class _TrackedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def do_open(
        self, http_class: Any, req: urllib.request.Request, **http_conn_args: Any
    ) -> http.client.HTTPResponse:
        factory = functools.partial(_TrackedHTTPConnection, deadline=self._deadline)
        return super().do_open(cast(Any, factory), req, **http_conn_args)


class _TrackedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def do_open(
        self, http_class: Any, req: urllib.request.Request, **http_conn_args: Any
    ) -> http.client.HTTPResponse:
        factory = functools.partial(_TrackedHTTPSConnection, deadline=self._deadline)
        return super().do_open(cast(Any, factory), req, **http_conn_args)


def _read_capped(response: Any, max_bytes: int, shown: str) -> bytes:
    length = (response.headers.get("Content-Length") or "").strip()
    if length.isdigit() and (len(length) > 18 or int(length) > max_bytes):
        raise IntensityError(
            f"{shown}: response of {length[:20]} bytes is larger than the limit of "
            f"{max_bytes} bytes; not read"
        )
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = response.read(min(_CHUNK_BYTES, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise IntensityError(
                f"{shown}: response is larger than the limit of {max_bytes} bytes; cut there"
            )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def get_json(
    url: str,
    headers: dict[str, str],
    timeout_s: float,
    *,
    max_bytes: int = MAX_RESPONSE_BYTES,
) -> Any:
    """GET ``url`` and decode JSON; every failure becomes an :class:`IntensityError`.

    ``timeout_s`` is the total budget (connect, headers, body), not a per-read timeout. The body
    is read up to ``max_bytes``; credentials in ``headers`` are not re-sent on a redirect to
    another origin and never appear in an error message.
    """
    secrets = _secrets(headers)
    try:
        return _get_json(url, headers, timeout_s, max_bytes)
    except IntensityError as exc:
        text = str(exc)
        clean = redact(text, secrets)
        if clean != text:
            raise IntensityError(clean) from None
        raise


def _get_json(url: str, headers: dict[str, str], timeout_s: float, max_bytes: int) -> Any:
    shown = shown_url(url)
    timeout_s = check_timeout(timeout_s, shown)
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise IntensityError(f"{shown}: only http:// and https:// URLs are used")
    request = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    timed_out = f"{shown}: timed out after {timeout_s:g} s"
    with _Deadline(timeout_s) as deadline:
        opener = urllib.request.build_opener(
            _TrackedHTTPHandler(deadline), _TrackedHTTPSHandler(deadline), _SameOriginCredentials()
        )
        try:
            with opener.open(request, timeout=timeout_s) as response:
                body = _read_capped(response, max_bytes, shown)
        except IntensityError:
            raise
        except urllib.error.HTTPError as exc:
            with exc:
                if deadline.expired:
                    raise IntensityError(timed_out) from None
                raise IntensityError(f"{shown}: {_http_reason(exc)}") from None
        except urllib.error.URLError as exc:
            if deadline.expired or isinstance(exc.reason, TimeoutError):
                raise IntensityError(timed_out) from None
            raise IntensityError(f"{shown}: cannot connect: {exc.reason}") from None
        except TimeoutError:
            raise IntensityError(timed_out) from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if deadline.expired:
                raise IntensityError(timed_out) from None
            detail = str(exc).split("\n", 1)[0][:120] or type(exc).__name__
            raise IntensityError(f"{shown}: bad HTTP response: {detail}") from None
        if deadline.expired:  # a body read until the connection was shut: cut, not whole
            raise IntensityError(timed_out)
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise IntensityError(f"{shown}: response is not valid JSON: nested too deeply") from None
    except ValueError:
        raise IntensityError(f"{shown}: response is not valid JSON: {body[:80]!r}") from None


def _http_reason(exc: urllib.error.HTTPError) -> str:
    if exc.code in (401, 403):
        return f"HTTP {exc.code}: unauthorized (check the token or credentials)"
    if exc.code == 429:
        retry = exc.headers.get("Retry-After") if exc.headers else None
        shown_retry = f", retry after {retry[:20]} s" if retry else ""
        return "HTTP 429: rate limited" + shown_retry
    reason = "".join(c if c.isprintable() else "?" for c in str(exc.reason))[:120]
    return f"HTTP {exc.code} {reason}"


def intensity_value(obj: Any, name: str, where: str, scale: float = 1.0) -> float:
    """Field ``name`` of ``obj`` as gCO2/kWh (the raw number times ``scale``); an
    IntensityError names the field when it is missing, not a number, NaN, negative or huge."""
    value = field(obj, name, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return check_g_per_kwh(value, f"{where}: field {name!r}")
    try:
        raw = float(value)
    except OverflowError:
        raw = math.inf
    return check_g_per_kwh(raw * scale, f"{where}: field {name!r}")


def field(obj: Any, name: str, where: str) -> Any:
    """``obj[name]`` or an :class:`IntensityError` naming the missing field."""
    if not isinstance(obj, dict) or obj.get(name) is None:
        raise IntensityError(f"{where}: response has no field {name!r}")
    return obj[name]


def parse_time(text: Any, where: str) -> datetime:
    """An ISO 8601 timestamp from a response, as UTC."""
    if not isinstance(text, str):
        raise IntensityError(f"{where}: bad timestamp {str(text)[:60]!r}")
    try:
        return utc(datetime.fromisoformat(text))
    except (ValueError, OverflowError):
        raise IntensityError(f"{where}: bad timestamp {text[:60]!r}") from None


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
        if isinstance(ttl_s, bool) or not (
            isinstance(ttl_s, int | float) and 0 <= ttl_s < math.inf
        ):
            raise IntensityError(f"{self.name}: ttl_s must be a finite number >= 0, got {ttl_s!r}")
        if fallback_g_per_kwh is not None:
            check_g_per_kwh(fallback_g_per_kwh, f"{self.name}: fallback_g_per_kwh")
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
        self.timeout_s = check_timeout(timeout_s, "electricitymaps")

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
            value = intensity_value(body, "carbonIntensity", where)
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
                intensity_value(p, "carbonIntensity", where),
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
        self.timeout_s = check_timeout(timeout_s, "watttime")
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
            (
                parse_time(field(p, "point_time", where), where),
                intensity_value(p, "value", where, LBS_PER_MWH_TO_G_PER_KWH),
            )
            for p in data
        ]
        # the forecast's first point is the current interval; otherwise the point covering `at`
        stamp, g = min(points) if at is None and points else pick(points, when, where)
        return IntensityReading(g, zone, stamp if at is None else when, where, self.kind)

"""SSRF-safe fetching of a user-supplied URL (OWASP SSRF prevention): http(s) only; the host is resolved once and
every address checked (no private, loopback, link-local, multicast, reserved or unspecified ones, IPv4 and IPv6,
IPv4-mapped/compatible/6to4/Teredo forms unwrapped); the connection goes to that checked address (Host header and
TLS SNI/certificate name stay the URL's), so a DNS answer that changes between check and connect (rebinding) is
never used; each redirect is checked the same way; body size and total time are capped.

The total time is one deadline for the whole exchange (connect, headers, body, every redirect): urllib3's timeouts
bound each socket operation only, so a server trickling one byte a second would never trip them. ``Deadline`` shuts
the connection's socket down when the time is up, which ends whatever read is blocked on it.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
import urllib3.connection

from face3d.shared.errors import ErrorCode, Face3dError, FetchFailed, UrlNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024
USER_AGENT = "face3d-image-fetch/1"
# Refused although Python's ipaddress calls them global (its table varies by version): IPv6 site-local (deprecated,
# still routed inside many networks) and the IETF protocol assignments (192.0.0.8, .9, .10 are flagged global).
NOT_PUBLIC = (ipaddress.ip_network("fec0::/10"), ipaddress.ip_network("192.0.0.0/24"))


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int
    timeout_s: float = 10.0
    max_redirects: int = 3
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()      # CIDRs trusted although private (labs, tests)
    ca_certs: str | None = None                 # CA bundle for https (default: certifi's, via urllib3)


@dataclass(frozen=True)
class Fetched:
    data: bytes
    url: str                    # the final URL, after redirects
    content_type: str | None
    filename: str               # last path segment of the final URL ("" when none)
    hops: list[str] = field(default_factory=list)


def fetch(url: str, policy: FetchPolicy, resolve: Resolver | None = None) -> Fetched:
    """GET ``url`` under ``policy``. Raises UrlNotAllowed, FetchFailed or Face3dError(PAYLOAD_TOO_LARGE)."""
    with Deadline(policy.timeout_s) as deadline:
        try:
            fetched = _fetch(url, policy, resolve or system_resolver, deadline)
        except Exception:
            if not deadline.expired:
                raise
            fetched = None
    if deadline.expired:    # also when the cut made a short answer look complete (headers ended by the cut)
        raise FetchFailed(f"fetching took longer than {policy.timeout_s:g} s")
    return fetched


def _fetch(url: str, policy: FetchPolicy, resolve: Resolver, deadline: "Deadline") -> Fetched:
    hops: list[str] = []
    for _ in range(policy.max_redirects + 1):
        hops.append(url)
        target = check_url(url, policy, resolve)
        response = _request(target, policy, deadline)
        try:
            if response.status in REDIRECTS and response.headers.get("Location"):
                url = urljoin(url, response.headers["Location"])
                continue
            if response.status >= 400:
                raise FetchFailed(f"{_safe(url)} answered HTTP {response.status}", status=response.status)
            data = _read_capped(response, policy.max_bytes, deadline)
        finally:
            response.release_conn()
        name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        return Fetched(data, url, response.headers.get("Content-Type"), name, hops)
    raise FetchFailed(f"more than {policy.max_redirects} redirects starting at {_safe(hops[0])}")


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str           # as in the URL (Host header, SNI, certificate name)
    port: int
    address: str        # the checked address the connection goes to
    path: str           # path + query, never the fragment or userinfo


def check_url(url: str, policy: FetchPolicy, resolve: Resolver) -> Target:
    """Parse and vet ``url``; returns the pinned target. Every resolved address must be allowed, not just one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UrlNotAllowed(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlNotAllowed(f"only http and https URLs are fetched, not {scheme or 'a scheme-less URL'!r}")
    if not parts.hostname:
        raise UrlNotAllowed("the URL has no host")
    if parts.username or parts.password:
        raise UrlNotAllowed("URLs with credentials are not fetched")
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(parts.hostname, port, resolve)
    for address in addresses:
        refusal = address_refusal(address, policy)
        if refusal:
            raise UrlNotAllowed(f"{parts.hostname} resolves to {address}, {refusal}", address=str(address))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme, parts.hostname, port, str(addresses[0]), path)


def address_refusal(address: IPAddress, policy: FetchPolicy) -> str | None:
    """Why ``address`` may not be fetched, or None when it may."""
    if policy.allow_private or any(address in ipaddress.ip_network(net, strict=False)
                                   for net in policy.allowed_networks if _same_family(address, net)):
        return None
    for candidate in _embedded_ipv4(address):
        if (not candidate.is_global or candidate.is_multicast or candidate.is_reserved or candidate.is_unspecified
                or any(candidate in net for net in NOT_PUBLIC if net.version == candidate.version)):
            return "a private, loopback, link-local, multicast or reserved address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        raw = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise FetchFailed(f"cannot resolve {host}: {exc}") from None
    if not raw:
        raise FetchFailed(f"{host} has no address")
    return [ipaddress.ip_address(item.split("%", 1)[0]) for item in raw]


def _embedded_ipv4(address: IPAddress) -> list[IPAddress]:
    """The address itself plus any IPv4 address tunnelled inside an IPv6 one (mapped, 6to4, Teredo, compatible)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        for inner in (address.ipv4_mapped, address.sixtofour, address.teredo and address.teredo[1]):
            if inner is not None:
                found.append(inner)
        if address.packed[:12] == bytes(12) and int(address) > 1:     # deprecated IPv4-compatible ::a.b.c.d
            found.append(ipaddress.IPv4Address(address.packed[12:]))
    return found


def _same_family(address: IPAddress, network: str) -> bool:
    return ipaddress.ip_network(network, strict=False).version == address.version


def _request(target: Target, policy: FetchPolicy, deadline: "Deadline") -> urllib3.BaseHTTPResponse:
    remaining = deadline.remaining()
    if remaining <= 0:
        raise FetchFailed(f"fetching took longer than {policy.timeout_s:g} s")
    pool = pinned_pool(target, remaining, policy.ca_certs, deadline)
    try:
        return pool.urlopen("GET", target.path, headers={"Host": host_header(target), "User-Agent": USER_AGENT,
                                                         "Accept": "image/*"},
                            redirect=False, retries=False, preload_content=False, assert_same_host=False)
    except urllib3.exceptions.HTTPError as exc:
        raise FetchFailed(f"fetching {target.scheme}://{target.host}:{target.port} failed: {_reason(exc)}") from None


class Deadline:
    """``with Deadline(seconds) as deadline:`` one total time limit for the connections made through pools built
    with it (``pinned_pool(..., deadline)``): when it passes, their sockets are shut down and ``expired`` is set."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return self.ends_at - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def __enter__(self) -> "Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    try:    # the plain socket's shutdown, also under a TLS wrapper: a blocked recv() in another thread returns
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _WatchedConnection(urllib3.connection.HTTPConnection):
    def __init__(self, *args: object, deadline: Deadline | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        if self._deadline is not None:
            self._deadline.watch(sock)
        return sock


class _WatchedTlsConnection(_WatchedConnection, urllib3.connection.HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedConnection


class _TlsPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedTlsConnection


def pinned_pool(target: Target, timeout_s: float, ca_certs: str | None = None,
                deadline: Deadline | None = None) -> urllib3.HTTPConnectionPool:
    """A connection pool to the checked address itself, with the URL's host for SNI and the certificate check (no
    second DNS lookup between check and connect). Used for image_url fetches and webhook POSTs; with ``deadline``,
    its connections end when the deadline passes."""
    timeout = urllib3.Timeout(connect=min(timeout_s, 5.0), read=timeout_s)
    if target.scheme == "https":
        return _TlsPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1, server_hostname=target.host,
            assert_hostname=target.host, cert_reqs="CERT_REQUIRED", ca_certs=ca_certs, deadline=deadline)
    return _Pool(target.address, target.port, timeout=timeout, retries=False, maxsize=1, deadline=deadline)


def host_header(target: Target) -> str:
    """The Host header of the URL that was checked (its port only when not the scheme's default)."""
    default_port = 443 if target.scheme == "https" else 80
    return _host_header(target.host) + ("" if target.port == default_port else f":{target.port}")


def _read_capped(response: urllib3.BaseHTTPResponse, max_bytes: int, deadline: Deadline) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise Face3dError(f"the image at the URL is {declared} bytes, over the limit of {max_bytes}",
                          ErrorCode.PAYLOAD_TOO_LARGE)
    body = bytearray()
    try:
        for chunk in response.stream(CHUNK, decode_content=True):
            body += chunk
            if len(body) > max_bytes:
                raise Face3dError(f"the image at the URL is larger than the limit of {max_bytes} bytes",
                                  ErrorCode.PAYLOAD_TOO_LARGE)
            if deadline.expired:
                raise FetchFailed("fetching the image took too long")
    except urllib3.exceptions.HTTPError as exc:
        raise FetchFailed(f"reading the image failed: {_reason(exc)}") from None
    return bytes(body)


def _host_header(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)[:300]


def _safe(url: str) -> str:
    return url[:200]

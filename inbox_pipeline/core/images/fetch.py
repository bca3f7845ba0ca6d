"""Downloading one image over HTTP(S), with SSRF checks on every hop.

The connection goes to the address that was checked (the Host header and TLS
server name carry the host name), redirects are followed by hand so each hop
is checked again, and a watchdog closes the socket at the deadline so a server
that trickles bytes cannot hold a worker past the timeout.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import quote, urljoin, urlsplit

from inbox_pipeline.core.images.policy import ImagePolicy
from inbox_pipeline.core.images.ssrf import AddressRefused, resolve_checked

_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024
_ACCEPT = "image/jpeg,image/png,image/gif,image/webp,image/svg+xml;q=0.9,image/*;q=0.8,*/*;q=0.5"


@dataclass(frozen=True)
class FetchedImage:
    url: str  # the final URL, after redirects
    content_type: str | None  # as the server declared it, e.g. "image/webp"
    data: bytes


@dataclass(frozen=True)
class FetchFailure:
    reason: str  # a short phrase for a person, e.g. "404 Not Found"


@runtime_checkable
class ImageFetcher(Protocol):
    """The network seam: one URL in, bytes or a reason out. Must not raise."""

    def fetch(self, url: str) -> FetchedImage | FetchFailure: ...


def format_bytes(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.3g} MB"
    if n >= 1024:
        return f"{n / 1024:.3g} KB"
    return f"{n} bytes"


class _Failed(Exception):
    pass


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a checked IP while speaking HTTP to the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # Certificate checked against the host name, not the pinned address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class HttpImageFetcher:
    """The real network, within the limits of the ImagePolicy it was made with.

    The SSRF rules, timeout and byte cap are this fetcher's own policy, not the
    one later given to process_images: build it from the same policy.
    """

    def __init__(self, policy: ImagePolicy, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self._ssl_context = ssl_context or ssl.create_default_context()

    def fetch(self, url: str) -> FetchedImage | FetchFailure:
        deadline = time.monotonic() + self.policy.timeout_seconds
        try:
            return self._fetch(url, deadline)
        except _Failed as exc:
            return FetchFailure(str(exc))
        except AddressRefused as exc:
            return FetchFailure(str(exc))
        except (TimeoutError, socket.timeout):
            return FetchFailure(f"timed out after {self.policy.timeout_seconds:g} s")
        except ssl.SSLCertVerificationError as exc:
            return FetchFailure(f"TLS certificate not trusted ({exc.verify_message or exc.reason})")
        except ssl.SSLError as exc:
            return FetchFailure(f"TLS error ({exc.reason or exc})")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if time.monotonic() >= deadline:
                return FetchFailure(f"timed out after {self.policy.timeout_seconds:g} s")
            return FetchFailure(f"network error ({type(exc).__name__}: {exc})".replace("()", ""))

    def _fetch(self, url: str, deadline: float) -> FetchedImage:
        policy = self.policy
        for _hop in range(policy.max_redirects + 1):
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https"):
                raise _Failed(f"unsupported URL scheme {scheme + ':' if scheme else '(none)'}")
            try:
                host = (parts.hostname or "").encode("idna").decode("ascii")
            except UnicodeError:
                raise _Failed(f"invalid host name {parts.hostname!r}") from None
            port = parts.port or (443 if scheme == "https" else 80)  # ValueError for a bad port
            resolved = resolve_checked(
                host,
                port,
                allow_private_networks=policy.allow_private_networks,
                allowed_hosts=policy.allowed_hosts,
            )
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            # Newsletters do put raw non-ASCII in image paths; HTTP wants them percent-encoded.
            target = quote(target, safe="/?&=%:@!$'()*+,;~-._[]")
            response, conn, watchdog = self._request(scheme, resolved.host, port, resolved.addresses, target, deadline)
            try:
                if response.status in _REDIRECTS:
                    location = response.getheader("Location")
                    if not location:
                        raise _Failed(f"{response.status} redirect without a Location")
                    url = urljoin(url, location.strip())
                    continue
                if response.status != 200:
                    raise _Failed(f"{response.status} {response.reason}".strip())
                data = self._read_body(response, deadline)
                return FetchedImage(url=url, content_type=response.getheader("Content-Type"), data=data)
            finally:
                watchdog.cancel()
                conn.close()
        raise _Failed(f"more than {policy.max_redirects} redirects")

    def _request(
        self, scheme: str, host: str, port: int, addresses: tuple[str, ...], target: str, deadline: float
    ) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection, threading.Timer]:
        last_error: Exception | None = None
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            conn: http.client.HTTPConnection
            if scheme == "https":
                conn = _PinnedHTTPSConnection(host, port, address, remaining, self._ssl_context)
            else:
                conn = _PinnedHTTPConnection(host, port, address, remaining)
            watchdog = threading.Timer(remaining, _abort, args=(conn,))
            watchdog.daemon = True
            watchdog.start()
            try:
                conn.putrequest("GET", target, skip_accept_encoding=True)
                conn.putheader("User-Agent", self.policy.user_agent)
                conn.putheader("Accept", _ACCEPT)
                conn.putheader("Accept-Encoding", "identity")
                conn.endheaders()
                return conn.getresponse(), conn, watchdog
            except (ConnectionError, socket.timeout, TimeoutError) as exc:
                watchdog.cancel()
                conn.close()
                last_error = exc
                if time.monotonic() >= deadline or not isinstance(exc, ConnectionRefusedError):
                    raise
            except BaseException:
                watchdog.cancel()
                conn.close()
                raise
        assert last_error is not None
        raise last_error

    def _read_body(self, response: http.client.HTTPResponse, deadline: float) -> bytes:
        cap = self.policy.max_bytes_per_image
        length = response.getheader("Content-Length")
        if length and length.strip().isdigit() and int(length) > cap:
            raise _Failed(f"larger than {format_bytes(cap)} ({format_bytes(int(length))})")
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        decoder = None
        if encoding in ("gzip", "x-gzip"):
            decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            decoder = zlib.decompressobj()
        elif encoding not in ("identity", ""):
            raise _Failed(f"unsupported Content-Encoding {encoding}")
        chunks: list[bytes] = []
        size = 0
        while True:
            if time.monotonic() >= deadline:
                raise TimeoutError
            chunk = response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK)
            if not chunk:
                break
            if decoder is not None:
                # Bounded output, so a compression bomb stops at the cap.
                chunk = decoder.decompress(chunk, cap + 1 - size)
                if decoder.unconsumed_tail:
                    size = cap + 1
            size += len(chunk)
            if size > cap:
                raise _Failed(f"larger than {format_bytes(cap)}")
            chunks.append(chunk)
        if time.monotonic() >= deadline:
            raise TimeoutError  # the watchdog ended the read, the body is cut short
        if response.length:  # bytes promised by Content-Length that never came
            raise _Failed("the connection closed before the whole image arrived")
        return b"".join(chunks)


def _abort(conn: http.client.HTTPConnection) -> None:
    """Deadline reached: unblock whatever the worker is waiting for."""
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

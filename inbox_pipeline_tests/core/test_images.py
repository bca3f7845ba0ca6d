"""process_images against a real HTTP server on 127.0.0.2, with images made by Pillow.

127.0.0.2 is loopback too, so it is put in ``allowed_hosts``; everything else
on loopback or a private network must still be refused. Private addresses
(10.x, metadata) are only ever checked by resolution: no traffic goes there.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import socket
import ssl
import struct
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
from lxml import etree
from PIL import Image

from inbox_pipeline.core.images import (
    AddressRefused,
    HttpImageFetcher,
    ImagePolicy,
    ImagesResult,
    clear_memory_cache,
    forbidden_reason,
    is_tracker_url,
    process_images,
    resolve_checked,
)
from inbox_pipeline.core.message import InlinePart
from inbox_pipeline_tests.conftest import unavailable
from inbox_pipeline_tests.helpers import self_signed_certificate

# --- connections made -----------------------------------------------------------------------------


@contextmanager
def connections_attempted() -> Iterator[list]:
    """The addresses every socket in this process tried to connect to, while inside."""
    attempted: list = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: object) -> None:
        attempted.append(address)
        real_connect(sock, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    try:
        yield attempted
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]


# --- images made here -----------------------------------------------------------


def photo(width: int = 320, height: int = 200) -> Image.Image:
    """Many colours, like a photograph."""
    red = Image.linear_gradient("L").resize((width, height))
    green = red.rotate(90).resize((width, height))
    blue = Image.effect_noise((width, height), 60)
    return Image.merge("RGB", (red, green, blue))


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def decoded(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size in a few bytes: the shape of a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# --- a real HTTP server ------------------------------------------------------------


@dataclass
class Gate:
    """Answers held at a gate all go when ``size`` requests wait there together."""

    size: int
    waiting: int = 0
    opened: bool = False


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "image/png"
    status: int = 200
    hold: float = 0.0  # the answer waits up to this long (a slow server) ...
    gate: Gate | None = None  # ... or until its gate opens
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True
    trickle: float = 0.0  # seconds between single body bytes
    sent: int = 0  # body bytes written before the client went away (or all of them)
    done: threading.Event = field(default_factory=threading.Event)  # its last answer has ended


class ImageServer:
    """ThreadingHTTPServer answering from a routing table, counting requests per path.

    A held answer waits on a condition, not a sleep: it is released when enough requests
    wait together, when its hold passes, or when the server closes (so no handler thread
    outlives its test).
    """

    def __init__(self, host: str, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.host_headers: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closing = False
        self._lock = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with server._lock:
                    server.requests.append(self.path)
                    server.host_headers.append(self.headers.get("Host"))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    route = server.routes.get(self.path, Route(b"no such image", "text/plain", 404))
                    gate = route.gate
                    if gate is not None:
                        gate.waiting += 1
                        gate.opened = gate.opened or gate.waiting >= gate.size
                        server._lock.notify_all()
                    try:
                        if route.hold or gate is not None:
                            server._lock.wait_for(lambda: server.closing or (gate is not None and gate.opened),
                                                  timeout=route.hold or None)
                    finally:
                        if gate is not None:
                            gate.waiting -= 1
                        # Counted while the request waits, not while the answer is written: the
                        # client may read a whole answer and ask again before this thread returns.
                        server.in_flight -= 1
                try:
                    self._answer(route)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should
                finally:
                    route.done.set()

            def _answer(self, route: Route) -> None:
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                if route.send_length:
                    self.send_header("Content-Length", str(len(route.body)))
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if route.trickle:
                    for byte in route.body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        route.sent += 1
                        with server._lock:  # the pause between bytes; a closing server cuts it short
                            if server._lock.wait_for(lambda: server.closing, timeout=route.trickle):
                                return
                else:
                    self.wfile.write(route.body)
                    route.sent = len(route.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.host, self.port = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def add(self, path: str, body: bytes = b"", content_type: str = "image/png", **options) -> str:
        self.routes[path] = Route(body, content_type, **options)
        return self.url(path)

    def count(self, path: str) -> int:
        return sum(1 for p in self.requests if p == path)

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.closing = True
            self._lock.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ImageServer]:
    with ImageServer("127.0.0.2") as srv:
        yield srv


@pytest.fixture
def policy() -> ImagePolicy:
    return ImagePolicy(allowed_hosts=frozenset({"127.0.0.2"}), timeout_seconds=2)


def imgs(result: ImagesResult) -> list[etree._Element]:
    root = etree.fromstring(f"<div>{result.html}</div>")
    return root.findall(".//img")


def only_image(result: ImagesResult) -> Image.Image:
    assert result.kept == 1, result.reasons
    assert len(result.images) == 1
    assert [img.get("src") for img in imgs(result)] == [result.images[0].file_name]
    return decoded(result.images[0].data)


# --- conversion ------------------------------------------------------------------------


def test_webp_photo_becomes_jpeg_and_flat_webp_becomes_png(server: ImageServer, policy: ImagePolicy) -> None:
    photo_url = server.add("/photo.webp", encode(photo(), "WEBP", quality=90), "image/webp")
    logo = Image.new("RGB", (120, 60), "white")
    logo.paste((0, 0, 160), (0, 0, 60, 60))
    logo_url = server.add("/logo.webp", encode(logo, "WEBP", lossless=True), "image/webp")

    result = process_images(f'<p><img src="{photo_url}" alt="a photo"/></p><p><img src="{logo_url}"/></p>', {}, policy)

    assert result.kept == 2 and result.dropped == 0, result.reasons
    assert [i.file_name for i in result.images] == ["images/img001.jpg", "images/img002.png"]
    assert [i.get("src") for i in imgs(result)] == ["images/img001.jpg", "images/img002.png"]
    assert imgs(result)[0].get("alt") == "a photo"
    jpeg, png = (decoded(i.data) for i in result.images)
    assert (jpeg.format, jpeg.mode, jpeg.size) == ("JPEG", "RGB", (320, 200))
    assert result.images[0].media_type == "image/jpeg"
    assert not jpeg.info.get("progressive") and not jpeg.info.get("progression")
    assert (png.format, png.size, result.images[1].media_type) == ("PNG", (120, 60), "image/png")
    assert png.convert("RGB").getpixel((10, 10)) == (0, 0, 160)
    assert png.convert("RGB").getpixel((100, 10)) == (255, 255, 255)


def test_png_with_alpha_is_composited_onto_white(policy: ImagePolicy) -> None:
    logo = Image.new("RGBA", (100, 40), (0, 0, 0, 0))
    logo.paste((200, 0, 0, 255), (0, 0, 50, 40))
    cutout = photo(200, 100).convert("RGBA")
    cutout.putalpha(Image.linear_gradient("L").resize((200, 100)))  # half see-through photo
    parts = {
        "logo@mail": InlinePart("logo@mail", "image/png", encode(logo, "PNG"), "logo.png"),
        "cutout@mail": InlinePart("cutout@mail", "image/png", encode(cutout, "PNG")),
    }

    result = process_images('<img src="cid:logo@mail"/><img src="cid:cutout@mail"/>', parts, policy)

    assert result.kept == 2, result.reasons
    flat_logo, flat_cutout = (decoded(i.data) for i in result.images)
    assert flat_logo.format == "PNG" and flat_logo.mode in ("RGB", "L", "P")
    assert "transparency" not in flat_logo.info
    assert flat_logo.convert("RGB").getpixel((10, 10)) == (200, 0, 0)
    assert flat_logo.convert("RGB").getpixel((90, 10)) == (255, 255, 255)
    assert flat_cutout.format == "JPEG" and flat_cutout.mode == "RGB"
    # Alpha 0 on the top rows: pure white after compositing (allowing for JPEG noise).
    assert all(channel > 245 for channel in flat_cutout.getpixel((100, 0)))


def test_animated_gif_keeps_only_its_first_frame(server: ImageServer, policy: ImagePolicy) -> None:
    frames = [Image.new("RGB", (80, 80), colour) for colour in ("red", "lime", "blue")]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(gif)).n_frames == 3
    url = server.add("/anim.gif", gif, "image/gif")

    im = only_image(process_images(f'<img src="{url}"/>', {}, policy))

    assert im.format == "PNG"
    assert getattr(im, "n_frames", 1) == 1
    assert im.convert("RGB").getpixel((40, 40)) == (255, 0, 0)


def test_exif_rotated_cmyk_and_grayscale_come_out_upright_rgb_and_grey(policy: ImagePolicy) -> None:
    wide = photo(200, 100)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown rotated 90 degrees
    cmyk = photo(90, 60).convert("CMYK")
    parts = {
        "rot": InlinePart("rot", "image/jpeg", encode(wide, "JPEG", exif=exif.tobytes())),
        "cmyk": InlinePart("cmyk", "image/jpeg", encode(cmyk, "JPEG")),
    }

    result = process_images('<img src="cid:rot"/><img src="cid:cmyk"/>', parts, policy)
    rotated, rgb = (decoded(i.data) for i in result.images)
    assert rotated.size == (100, 200)
    assert rgb.mode == "RGB" and rgb.size == (90, 60)

    grey = process_images('<img src="cid:cmyk"/>', parts, replace(policy, grayscale=True))
    assert decoded(grey.images[0].data).mode == "L"


def _cairosvg_available() -> bool:
    try:
        import cairosvg  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def test_svg_is_rasterised_to_png_without_fetching_what_it_references(
    server: ImageServer, policy: ImagePolicy
) -> None:
    if not _cairosvg_available():
        unavailable("CairoSVG with libcairo2 is not installed")
    secret = server.add("/inside-svg.png", encode(Image.new("RGB", (10, 10), "red"), "PNG"))
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="200" height="100" viewBox="0 0 20 10">'
        '<rect width="10" height="10" fill="#0000ff"/>'
        f'<image x="10" y="0" width="10" height="10" xlink:href="{secret}"/></svg>'
    ).encode()
    url = server.add("/chart.svg", svg, "image/svg+xml")
    huge = server.add("/poster.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="40000" height="20000"/>',
                      "image/svg+xml")

    result = process_images(f'<img src="{url}"/><img src="{huge}"/>', {}, policy)

    assert result.kept == 2, result.reasons
    chart, poster = (decoded(i.data) for i in result.images)
    assert chart.format == "PNG" and chart.size == (200, 100)
    assert chart.convert("RGB").getpixel((50, 50)) == (0, 0, 255)
    assert chart.convert("RGB").getpixel((150, 50)) == (255, 255, 255)  # transparent -> white, not fetched
    assert server.count("/inside-svg.png") == 0
    assert poster.width <= 1264 and poster.height <= 1680 and poster.size == (1264, 632)


def test_svg_without_cairosvg_is_dropped_with_a_reason(
    server: ImageServer, policy: ImagePolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cairosvg", None)  # as on a machine without the library
    url = server.add("/icon.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"/>', "image/svg+xml")
    keep = server.add("/keep.png", encode(Image.new("RGB", (30, 30), "green"), "PNG"))

    result = process_images(f'<p>x<img src="{url}"/></p><img src="{keep}"/>', {}, policy)

    assert result.kept == 1 and result.dropped == 1
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith(f"{url}: SVG cannot be rasterised")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_twenty_megapixel_image_is_downscaled_and_bombs_are_refused(server: ImageServer, policy: ImagePolicy) -> None:
    big = photo(5472, 3656)  # 20 MP
    big_url = server.add("/big.jpg", encode(big, "JPEG", quality=70), "image/jpeg")
    tall_png = Image.new("RGB", (2000, 10000), (30, 30, 30))
    tall_png.paste((250, 250, 250), (0, 0, 2000, 5000))
    tall_url = server.add("/tall.png", encode(tall_png, "PNG"), "image/png")
    bomb_url = server.add("/bomb.png", png_header_only(12000, 9000))
    huge_bomb_url = server.add("/huge-bomb.png", png_header_only(30000, 30000))
    policy = replace(policy, timeout_seconds=10, max_bytes_per_image=20_000_000)

    html = f'<img src="{big_url}"/><img src="{tall_url}"/><img src="{bomb_url}"/><img src="{huge_bomb_url}"/>'
    result = process_images(html, {}, policy)

    assert result.kept == 2 and result.dropped == 2
    photo_out, tall_out = (decoded(i.data) for i in result.images)
    assert photo_out.width <= 1264 and photo_out.height <= 1680
    assert photo_out.width == 1264  # fills the width it is allowed
    assert abs(photo_out.width / photo_out.height - 5472 / 3656) < 0.01
    assert tall_out.size == (336, 1680)
    assert result.reasons == [
        f"{bomb_url}: too large to convert (12000x9000 pixels, over 25 megapixels)",
        f"{huge_bomb_url}: too large to convert (over 25 megapixels)",
    ]


# --- network outcomes -----------------------------------------------------------------


def test_404_drops_that_image_with_its_reason_and_keeps_the_others(server: ImageServer, policy: ImagePolicy) -> None:
    good = server.add("/good.jpg", encode(photo(), "JPEG"), "image/jpeg")
    missing = server.url("/missing.webp")
    html = f'<p>Before <a href="https://example.org/"><img src="{missing}"/></a> after.</p><img src="{good}"/>'

    result = process_images(html, {}, policy)

    assert result.kept == 1 and result.dropped == 1
    assert result.reasons == [f"{missing}: 404 Not Found"]
    assert "<a" not in result.html  # the link only wrapped the lost image
    assert "Before  after." in result.html
    assert only_image(result).size == (320, 200)


def test_not_an_image_is_dropped(server: ImageServer, policy: ImagePolicy) -> None:
    page = server.add("/page.png", b"<html><body>Sorry</body></html>", "text/html")
    result = process_images(f'<img src="{page}"/>', {}, policy)
    assert result.kept == 0 and result.reasons == [f"{page}: not a supported image format"]


def test_slow_server_times_out_within_the_timeout(server: ImageServer, policy: ImagePolicy) -> None:
    good = server.add("/fast.png", encode(Image.new("RGB", (40, 40), "red"), "PNG"))
    slow = server.add("/slow.png", encode(Image.new("RGB", (40, 40), "blue"), "PNG"), hold=60)
    body = encode(photo(80, 80), "PNG")
    trickle = server.add("/trickle.png", body, trickle=0.02)  # headers at once, then a byte every 20 ms
    # The smallest timeout worth waiting for: the deadline is real, the servers are slower.
    policy = replace(policy, timeout_seconds=0.25)

    result = process_images(f'<img src="{slow}"/><img src="{trickle}"/><img src="{good}"/>', {}, policy)

    assert result.kept == 1
    assert sorted(result.reasons) == sorted([f"{slow}: timed out after 0.25 s", f"{trickle}: timed out after 0.25 s"])
    assert decoded(result.images[0].data).getpixel((5, 5)) == (255, 0, 0)
    # What bounded the wait: the slow answer was still held when process_images returned, and the
    # watchdog closed the trickling connection (the server's writes failed) long before the body was through.
    assert not server.routes["/slow.png"].done.is_set()
    assert server.routes["/trickle.png"].done.wait(10)
    assert 0 < server.routes["/trickle.png"].sent < len(body) // 10, (server.routes["/trickle.png"].sent, len(body))


def test_concurrent_fetches_take_one_delay_not_n(server: ImageServer, policy: ImagePolicy) -> None:
    n = 6
    # Each answer waits until all n requests are waiting together: a one-at-a-time fetcher
    # would time out on the first one. The timeout only ends a failing run: a loaded machine
    # may take seconds to start n threads, and the answers go as soon as they have.
    policy = replace(policy, timeout_seconds=10)
    together = Gate(n)
    urls = [server.add(f"/slowish{i}.png", encode(Image.new("RGB", (20 + i, 20), "red"), "PNG"), gate=together)
            for i in range(n)]

    result = process_images("".join(f'<img src="{u}"/>' for u in urls), {}, policy)

    assert result.kept == n, result.reasons
    assert [decoded(i.data).size for i in result.images] == [(20 + i, 20) for i in range(n)]
    assert server.max_in_flight == n

    # max_concurrency=1 really means one at a time: the answers would go at once if a second
    # request came while one waits (its hold, 0.1 s, is the longest a lone request waits).
    pair = Gate(2)
    serial_urls = [server.add(f"/serial{i}.png", encode(Image.new("RGB", (20, 20), "red"), "PNG"), gate=pair, hold=0.1)
                   for i in range(3)]
    server.max_in_flight = 0
    serial = process_images("".join(f'<img src="{u}"/>' for u in serial_urls), {}, replace(policy, max_concurrency=1))
    assert serial.kept == 3
    assert server.max_in_flight == 1 and not pair.opened


def test_redirects_are_followed_and_every_hop_is_checked(server: ImageServer, policy: ImagePolicy) -> None:
    with ImageServer("127.0.0.1") as internal:
        internal_url = internal.add("/x.png", encode(Image.new("RGB", (30, 30), "red"), "PNG"))
        to_internal = server.add("/to-internal.png", status=302, headers={"Location": internal_url})
        target = server.add("/real.png", encode(Image.new("RGB", (30, 30), "blue"), "PNG"))
        hop = server.add("/hop.png", status=301, headers={"Location": "/real.png"})
        server.add("/loop.png", status=307, headers={"Location": "/loop.png"})
        loop = server.url("/loop.png")

        result = process_images(f'<img src="{to_internal}"/><img src="{hop}"/><img src="{loop}"/>', {}, policy)

        assert internal.requests == []  # refused before connecting
    assert result.kept == 1
    assert decoded(result.images[0].data).getpixel((1, 1)) == (0, 0, 255)
    assert server.count("/real.png") == 1 and target
    assert result.reasons == [
        f"{to_internal}: refused to fetch from 127.0.0.1: a loopback address",
        f"{loop}: more than 5 redirects",
    ]
    assert server.count("/loop.png") == 6


def test_private_and_local_addresses_are_refused_before_connecting(server: ImageServer) -> None:
    # Checked by resolution alone first, so a failure here sends nothing anywhere.
    for host in ("10.0.0.1", "169.254.169.254", "fd00:ec2::254", "::1", "::ffff:10.0.0.1", "0.0.0.0", "localhost"):
        with pytest.raises(AddressRefused):
            resolve_checked(host, 80)
    urls = [
        "http://10.0.0.1/x.png",
        "http://192.168.1.20:8080/x.png",
        "http://169.254.169.254/latest/meta-data/x.png",
        "http://[fd00:ec2::254]/x.png",
        "http://[::ffff:10.0.0.1]/x.png",
        "http://localhost/x.png",
        "http://0.0.0.0/x.png",
        server.add("/x.png", encode(Image.new("RGB", (30, 30), "red"), "PNG")),  # loopback, not allowed here
    ]

    with connections_attempted() as attempted:
        result = process_images("".join(f'<img src="{u}"/>' for u in urls), {}, ImagePolicy(timeout_seconds=5))

    assert attempted == []  # not one socket connected anywhere
    assert result.kept == 0 and result.dropped == len(urls)
    assert server.requests == []
    assert result.reasons[0] == "http://10.0.0.1/x.png: refused to fetch from 10.0.0.1: a private address"
    assert result.reasons[2].endswith("a cloud metadata address")
    assert result.reasons[5].startswith("http://localhost/x.png: refused to fetch from localhost (")
    assert all("refused to fetch" in r for r in result.reasons)


def test_https_by_host_name_is_pinned_to_the_checked_address_and_verified(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with ImageServer("127.0.0.1", tls=server_tls) as tls_server:
        tls_server.add("/secure.png", encode(Image.new("RGB", (30, 20), "red"), "PNG"))
        url = f"https://localhost:{tls_server.port}/secure.png"
        policy = ImagePolicy(allowed_hosts=frozenset({f"localhost:{tls_server.port}"}), timeout_seconds=3)
        trusting = HttpImageFetcher(policy, ssl_context=ssl.create_default_context(cafile=str(cert)))

        result = process_images(f'<img src="{url}"/>', {}, policy, fetcher=trusting)
        untrusted = process_images(f'<img src="{url}?x"/>', {}, policy)  # the system's CAs do not know it
        strict = ImagePolicy(timeout_seconds=3)
        strict_fetcher = HttpImageFetcher(strict, ssl_context=ssl.create_default_context(cafile=str(cert)))
        not_allowed = process_images(f'<img src="{url}?y"/>', {}, strict, fetcher=strict_fetcher)

    assert only_image(result).size == (30, 20)
    assert tls_server.host_headers[0] == f"localhost:{tls_server.port}"
    assert untrusted.kept == 0 and untrusted.reasons == [f"{url}?…: TLS certificate not trusted (self-signed certificate)"]
    assert not_allowed.kept == 0 and "a loopback address" in not_allowed.reasons[0]
    assert tls_server.requests == ["/secure.png"]  # the failed handshake sent no request


def test_address_rules() -> None:
    expected = {
        "8.8.8.8": None,
        "2606:4700:4700::1111": None,
        "127.0.0.5": "a loopback address",
        "10.1.2.3": "a private address",
        "172.16.0.1": "a private address",
        "192.168.0.1": "a private address",
        "100.64.0.1": "a non-public address",
        "169.254.1.1": "a link-local address",
        "169.254.169.254": "a cloud metadata address",
        "224.0.0.1": "a multicast address",
        "240.0.0.1": "a reserved address",
        "0.0.0.0": "an unspecified address",
        "fe80::1": "a link-local address",
        "fc00::1": "a private address",
        "::ffff:127.0.0.1": "a loopback address (inside an IPv6 address)",
        "2002:a00:1::1": "a private address (inside an IPv6 address)",  # 6to4 of 10.0.0.1
        "64:ff9b::a9fe:a9fe": "a cloud metadata address (inside an IPv6 address)",  # NAT64 of 169.254.169.254
    }
    assert {a: forbidden_reason(ipaddress.ip_address(a)) for a in expected} == expected


def test_non_http_sources_are_dropped(policy: ImagePolicy) -> None:
    result = process_images(
        '<img src="file:///etc/passwd"/><img src="ftp://example.org/x.png"/><img src="relative/x.png"/><img/>',
        {},
        policy,
    )
    assert result.kept == 0 and result.dropped == 4
    assert result.reasons == [
        "file:///etc/passwd: unsupported URL scheme file:",
        "ftp://example.org/x.png: unsupported URL scheme ftp:",
        "relative/x.png: not an absolute URL",
        "<img> without a src: dropped",
    ]


# --- embedded sources -------------------------------------------------------------------


def test_cid_and_data_images_are_embedded(policy: ImagePolicy) -> None:
    part = InlinePart("Banner.123@mailer", "image/jpeg", encode(photo(300, 120), "JPEG"), "banner.jpg")
    dot = encode(Image.new("RGB", (40, 40), (0, 128, 0)), "PNG")
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="30" height="30"><rect width="30" height="30" fill="#ff0000"/></svg>'
    html = (
        '<p><img src="cid:%3Cbanner.123@mailer%3E" alt="Banner"/></p>'  # encoded brackets, other case
        f'<p><img src="data:image/png;base64,{base64.b64encode(dot).decode()}"/></p>'
        f'<p><img src="data:image/svg+xml;utf8,{quote(svg)}"/></p>'
        '<p>Text<img src="cid:missing@mailer"/></p>'
    )

    result = process_images(html, {"Banner.123@mailer": part}, policy)

    banner, green = decoded(result.images[0].data), decoded(result.images[1].data)
    assert banner.size == (300, 120) and result.images[0].file_name == "images/img001.jpg"
    assert green.convert("RGB").getpixel((20, 20)) == (0, 128, 0)
    if _cairosvg_available():
        assert result.kept == 3
        assert decoded(result.images[2].data).convert("RGB").getpixel((15, 15)) == (255, 0, 0)
    assert result.reasons[-1] == "cid:missing@mailer: no inline part with this Content-ID"
    assert "<p>Text</p>" in result.html


def test_html_is_kept_srcset_stripped_and_shared_sources_stored_once(server: ImageServer, policy: ImagePolicy) -> None:
    url = server.add("/hero.jpg", encode(photo(), "JPEG"), "image/jpeg")
    html = (
        '<h1 xmlns:epub="http://www.idpf.org/2007/ops" epub:type="title">Caf&eacute; &amp; news&nbsp;</h1>'
        f'<figure><picture><source srcset="{url}?w=2000 2x" type="image/webp"/>'
        f'<img src="{url}" srcset="{url}?w=640 640w" sizes="100vw" width="600" height="400" alt="Hero"/></picture>'
        "<figcaption>The hero</figcaption></figure>"
        f'<p>Again: <img src="{url}"/> done</p>'
    )

    result = process_images(html, {}, policy)

    assert result.kept == 2 and len(result.images) == 1 and server.count("/hero.jpg") == 1
    root = etree.fromstring(f'<div xmlns:epub="http://www.idpf.org/2007/ops">{result.html}</div>')
    assert root.find("h1").text == "Café & news\xa0"
    assert root.find("h1").get("{http://www.idpf.org/2007/ops}type") == "title"
    assert root.find(".//picture") is None and root.find(".//source") is None
    first, second = root.findall(".//img")
    assert dict(first.attrib) == {"src": "images/img001.jpg", "alt": "Hero"}
    assert dict(second.attrib) == {"src": "images/img001.jpg", "alt": ""}
    assert root.find("figure/figcaption").text == "The hero"
    assert "w=640" not in result.html


def test_loose_html_srcset_only_and_non_ascii_paths(server: ImageServer, policy: ImagePolicy) -> None:
    server.add("/caf%C3%A9%20menu.png", encode(Image.new("RGB", (33, 22), "red"), "PNG"))
    lazy = server.add("/lazy.png", encode(Image.new("RGB", (44, 22), "blue"), "PNG"))
    html = (
        f'<p>Not well-formed<br> &copy; <img src="{server.url("/café menu.png")}">'
        f'<p>Only a srcset: <img srcset="{lazy} 1x, {lazy}?2x 2x" alt="lazy">'
    )

    result = process_images(html, {}, policy)

    assert result.kept == 2, result.reasons
    assert [decoded(i.data).size for i in result.images] == [(33, 22), (44, 22)]
    root = etree.fromstring(f"<div>{result.html}</div>")  # well-formed now
    first_paragraph = "".join(root.find("p").itertext())
    assert "Not well-formed" in first_paragraph and "\u00a9" in first_paragraph
    assert [img.get("src") for img in root.iter("img")] == ["images/img001.png", "images/img002.png"]
    assert "srcset=" not in result.html


# --- trackers and caps -------------------------------------------------------------------


def test_tracking_pixels_are_dropped_without_being_fetched(server: ImageServer, policy: ImagePolicy) -> None:
    pixel = encode(Image.new("RGB", (1, 1), "white"), "GIF")
    declared = server.add("/b/spacer-not-named-so.gif", pixel, "image/gif")
    by_url = server.add("/track/open.php?u=abc&id=def", pixel, "image/gif")
    decoded_tiny = server.add("/images/banner.gif", pixel, "image/gif")
    real = server.add("/images/real.png", encode(Image.new("RGB", (50, 50), "red"), "PNG"))
    html = (
        f'<p>Hello</p><a href="https://example.org/"><img src="{declared}" width="1" height="1"/></a>'
        f'<img src="{by_url}" style="display:none"/>'
        f'<div><img src="{decoded_tiny}" alt=""/></div>'
        f'<img src="{real}" alt="Real"/>'
    )

    result = process_images(html, {}, policy)

    assert result.kept == 1 and result.dropped == 3
    assert sorted(server.requests) == ["/images/banner.gif", "/images/real.png"]
    assert result.reasons == [
        f"{declared}: tracking pixel or spacer (declared size)",
        f"{server.url('/track/open.php')}?…: tracking pixel",
        f"{decoded_tiny}: tracking pixel (1x1)",
    ]
    assert result.html == '<p>Hello</p><img src="images/img001.png" alt="Real"/>'


@pytest.mark.parametrize(
    "url",
    [
        "https://example.us1.list-manage.com/track/open.php?u=1&id=2&e=3",
        "https://u123.ct.sendgrid.net/wf/open?upn=abc",
        "https://email.mg.example.com/o/eJwtjEEOgyAQRe_CWhMGEYZepnH",
        "https://eotrx.substackcdn.com/open?token=eyJtIjoi",
        "https://example.beehiiv.com/ss/o/abc/def",
        "https://t.sidekickopen06.com/e1t/o/5/f18dQhb0S7kF8cpgrPW",
        "https://open.convertkit-mail2.com/abc123",
        "https://news.example.com/e/o/eyJlbWFpbF9pZCI6",
        "https://tracker.example.net/pixel.gif?id=1",
        "https://www.google-analytics.com/collect?v=1&t=event",
    ],
)
def test_tracker_url_shapes(url: str) -> None:
    assert is_tracker_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://substackcdn.com/image/fetch/w_1456,c_limit,f_auto/https%3A%2F%2Fexample.com%2Fa.png",
        "https://mcusercontent.com/abc/images/photo.jpg",
        "https://firebasestorage.googleapis.com/v0/b/app/o/photo.jpg?alt=media",
        "https://cdn.example.com/open/house.jpg",
        "https://media.beehiiv.com/cdn-cgi/image/fit=scale-down/uploads/asset/file/a.png",
    ],
)
def test_content_image_urls_are_not_trackers(url: str) -> None:
    assert not is_tracker_url(url)


def test_byte_cap_with_and_without_content_length(server: ImageServer, policy: ImagePolicy) -> None:
    big = encode(photo(400, 400), "PNG")
    assert len(big) > 100_000
    announced = server.add("/big-announced.png", big)
    unannounced = server.add("/big-unannounced.png", big, send_length=False)
    small = server.add("/small.png", encode(Image.new("RGB", (40, 40), "red"), "PNG"), send_length=False)
    policy = replace(policy, max_bytes_per_image=50_000)

    result = process_images(f'<img src="{announced}"/><img src="{unannounced}"/><img src="{small}"/>', {}, policy)

    assert result.kept == 1
    assert result.reasons[0] == f"{announced}: larger than 48.8 KB ({len(big) / 1024:.3g} KB)"
    assert result.reasons[1] == f"{unannounced}: larger than 48.8 KB"
    assert decoded(result.images[0].data).size == (40, 40)


def test_count_and_total_caps(server: ImageServer, policy: ImagePolicy) -> None:
    urls = [server.add(f"/n{i}.jpg", encode(photo(200 + i, 150), "JPEG"), "image/jpeg") for i in range(5)]
    html = "".join(f'<img src="{u}"/>' for u in urls)

    counted = process_images(html, {}, replace(policy, max_images=3))

    assert counted.kept == 3 and counted.dropped == 2
    assert [decoded(i.data).width for i in counted.images] == [200, 201, 202]
    assert counted.reasons == [f"{urls[3]}: more than 3 images", f"{urls[4]}: more than 3 images"]
    assert sorted(server.requests) == ["/n0.jpg", "/n1.jpg", "/n2.jpg"]

    one_size = len(counted.images[0].data)
    totalled = process_images(html, {}, replace(policy, max_total_bytes=int(one_size * 2.5)))
    assert totalled.kept == 2
    assert all("total for images" in r for r in totalled.reasons) and len(totalled.reasons) == 3


def test_cache_serves_the_second_run_without_a_request(server: ImageServer, policy: ImagePolicy, tmp_path: Path) -> None:
    url = server.add("/cached.png", encode(Image.new("RGB", (60, 30), "blue"), "PNG"))
    html = f'<img src="{url}"/>'
    cached = replace(policy, cache_dir=tmp_path / "cache")

    first = process_images(html, {}, cached)
    clear_memory_cache()  # only the disk can answer now
    second = process_images(html, {}, cached)
    third = process_images(html, {}, policy)  # no disk cache: the in-process one answers

    assert server.count("/cached.png") == 1
    assert first.images == second.images == third.images
    assert decoded(second.images[0].data).size == (60, 30)
    assert len(list((tmp_path / "cache").rglob("*.bin"))) == 1

    # Bytes fetched under one network scope are not served to another.
    process_images(html, {}, replace(policy, allow_private_networks=True))
    assert server.count("/cached.png") == 2


def test_fetching_off_still_embeds_cid_and_data(server: ImageServer, policy: ImagePolicy) -> None:
    remote = server.add("/remote.png", encode(Image.new("RGB", (30, 30), "red"), "PNG"))
    inline = encode(Image.new("RGB", (30, 30), "blue"), "PNG")
    html = (
        f'<img src="{remote}"/><img src="cid:inline"/>'
        f'<img src="data:image/png;base64,{base64.b64encode(inline).decode()}"/>'
    )

    result = process_images(html, {"inline": InlinePart("inline", "image/png", inline)}, replace(policy, fetch_remote=False))

    assert result.kept == 2 and result.dropped == 1
    assert result.reasons == [f"{remote}: image fetching is off"]
    assert server.requests == []
    assert [i.file_name for i in result.images] == ["images/img001.png", "images/img002.png"]

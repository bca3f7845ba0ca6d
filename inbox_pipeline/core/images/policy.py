"""ImagePolicy: how images are fetched, limited and converted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024
DEFAULT_USER_AGENT = "inbox-pipeline/0.1 (newsletter to e-reader converter)"


@dataclass(frozen=True)
class ImagePolicy:
    fetch_remote: bool = True
    timeout_seconds: float = 10  # for one image, connect + redirects + body
    max_bytes_per_image: int = 5 * MB
    max_images: int = 60  # distinct images per document
    max_total_bytes: int = 25 * MB  # downloaded, and embedded, per document
    max_concurrency: int = 8
    allow_private_networks: bool = False
    allowed_hosts: frozenset[str] = frozenset()  # "host" or "host:port", reachable even if private
    max_dimension: tuple[int, int] = (1264, 1680)  # (width, height), Kindle Paperwhite-ish
    jpeg_quality: int = 80
    grayscale: bool = False
    cache_dir: Path | None = None  # disk cache of downloaded bytes, keyed by sha256 of the URL
    user_agent: str = DEFAULT_USER_AGENT
    max_redirects: int = 5
    # Budgets for decoding (see README "Budgets" for why these numbers).
    max_source_pixels: int = 25_000_000  # decoded (a JPEG after libjpeg's scaling); ~5.5 bytes each at the peak
    svg_max_elements: int = 20_000  # drawn, with <use> copies expanded
    svg_cpu_seconds: int = 4  # CPU per SVG (the worker's RLIMIT_CPU): the same on a busy machine
    svg_seconds: float = 15.0  # wall clock per SVG, for a worker that waits rather than computes
    svg_memory_bytes: int = 256 * MB  # address space of the SVG worker process

    @property
    def network_scope(self) -> str:
        """What this policy may reach: cached bytes are only shared within one scope.

        Without it, bytes fetched under a policy that trusts a private host
        could be served from the cache to a document under a stricter policy.
        """
        if self.allow_private_networks:
            return "private"
        if self.allowed_hosts:
            return "allow:" + ",".join(sorted(h.lower() for h in self.allowed_hosts))
        return ""

"""SVG -> PNG within budgets: elements counted before rendering, pixels fitted, and a worker process that is killed when it overruns.

SVG is a program as much as a picture: ``<use>`` copies of copies grow
exponentially from a few hundred bytes, and images embedded in it are
decoded by cairo without any limit of ours. So the document is measured
first (every element as it will be drawn, ``<use>`` and ``href`` references
expanded), and the rendering itself runs in a separate process with an
address-space and CPU limit, stopped by a wall-clock timeout. Nothing keeps
running after ``rasterise_svg`` returns.
"""

from __future__ import annotations

import importlib.util
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from lxml import etree

from inbox_pipeline.core.images.policy import MB, ImagePolicy
from inbox_pipeline.core.images.svg_worker import OUT_OF_MEMORY, UNAVAILABLE, UNRENDERABLE

_WORKER = str(Path(__file__).with_name("svg_worker.py"))
# Workers alive at once in this process: each may use up to svg_memory_bytes.
_workers = threading.BoundedSemaphore(2)
_XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
_LENGTH = re.compile(r"^\s*([+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-z%]*)\s*$", re.I)
_UNIT_PX = {"": 1.0, "px": 1.0, "pt": 96 / 72, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0, "em": 16.0, "ex": 8.0}


class SvgRefused(Exception):
    """The SVG is not rendered; the message says why, for a person."""


def looks_like_svg(data: bytes, declared_type: str | None = None) -> bool:
    if declared_type and "svg" in declared_type.lower():
        return True
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg"):
        return True
    return head.startswith((b"<?xml", b"<!doctype", b"<!--")) and b"<svg" in head


def rasterise_svg(data: bytes, policy: ImagePolicy) -> bytes:
    """SVG -> PNG at its own size, fitted within the policy's max_dimension; raise SvgRefused if it cannot be.

    External references are not fetched (only ``data:`` URLs inside it are read).
    """
    root = _parse(data)
    width, height = _intrinsic_size(root)
    drawn = rendered_elements(root, policy.svg_max_elements)
    if drawn > policy.svg_max_elements:
        raise SvgRefused(f"SVG too complex (over {policy.svg_max_elements:,} elements once <use> copies are counted)")
    box = policy.max_dimension
    scale = min(1.0, box[0] / width, box[1] / height)
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    if importlib.util.find_spec("cairosvg") is None:
        raise SvgRefused("SVG cannot be rasterised (CairoSVG or libcairo2 is not installed)")
    return _render(data, out_w, out_h, policy)


def _render(data: bytes, width: int, height: int, policy: ImagePolicy) -> bytes:
    seconds, cpu = policy.svg_seconds, policy.svg_cpu_seconds
    command = [sys.executable, _WORKER, str(width), str(height), str(policy.svg_memory_bytes), str(cpu)]
    try:
        with _workers:
            # run() kills the worker when the timeout passes and waits for it.
            done = subprocess.run(command, input=data, capture_output=True, timeout=seconds, check=False)
    except subprocess.TimeoutExpired:
        raise SvgRefused(f"SVG took more than {seconds:g} s to rasterise: stopped") from None
    if done.returncode == 0 and done.stdout:
        return done.stdout
    detail = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode == UNAVAILABLE:
        raise SvgRefused(f"SVG cannot be rasterised (CairoSVG or libcairo2 is not installed: {detail})")
    if done.returncode == OUT_OF_MEMORY:
        raise SvgRefused(f"SVG needs more than {policy.svg_memory_bytes // MB} MB to rasterise: stopped")
    if done.returncode == UNRENDERABLE:
        raise SvgRefused(f"SVG cannot be rasterised ({detail})")
    if done.returncode == -signal.SIGXCPU:
        raise SvgRefused(f"SVG took more than {cpu} s of CPU to rasterise: stopped")
    # cairo aborts or crashes when an allocation fails under the address-space limit.
    name = signal.Signals(-done.returncode).name if done.returncode < 0 else f"exit {done.returncode}"
    raise SvgRefused(f"SVG rasteriser stopped ({name}), within {policy.svg_memory_bytes // MB} MB of memory")


def _parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise SvgRefused(f"not a readable SVG ({exc})") from None
    if etree.QName(root).localname != "svg":
        raise SvgRefused("not an SVG document")
    return root


def rendered_elements(root: etree._Element, limit: int) -> int:
    """How many elements drawing ``root`` visits, references (``<use>``, patterns...) expanded; stops past ``limit``.

    A reference cycle counts as over the limit.
    """
    by_id = {el.get("id"): el for el in root.iter() if isinstance(el.tag, str) and el.get("id")}

    def dependencies(el: etree._Element) -> list[etree._Element]:
        deps = [child for child in el if isinstance(child.tag, str)]
        href = (el.get(_XLINK_HREF) or el.get("href") or "").strip()
        if href.startswith("#") and href[1:] in by_id:
            deps.append(by_id[href[1:]])
        return deps

    # Post-order over a graph that may share nodes or loop; iterative, as <use> chains can be deep.
    counts: dict[etree._Element, int] = {}
    open_: set[etree._Element] = set()
    stack: list[tuple[etree._Element, bool]] = [(root, False)]
    while stack:
        el, finishing = stack.pop()
        if finishing:
            counts[el] = min(limit + 1, 1 + sum(counts[dep] for dep in dependencies(el)))
            open_.discard(el)
            continue
        if el in counts:
            continue
        if el in open_:
            return limit + 1  # a cycle: it would never finish drawing
        open_.add(el)
        stack.append((el, True))
        stack.extend((dep, False) for dep in dependencies(el) if dep not in counts)
    return counts[root]


def _length(value: str | None) -> float | None:
    match = _LENGTH.match(value or "")
    if not match or match.group(2).lower() not in _UNIT_PX:
        return None  # "%" and unknown units depend on a viewport we do not have
    length = float(match.group(1)) * _UNIT_PX[match.group(2).lower()]
    return length if length > 0 else None


def _intrinsic_size(root: etree._Element) -> tuple[float, float]:
    """The SVG's own size in CSS pixels, from width/height or viewBox (300x150 if neither)."""
    width, height = _length(root.get("width")), _length(root.get("height"))
    box_w = box_h = None
    parts = re.split(r"[\s,]+", (root.get("viewBox") or "").strip())
    if len(parts) == 4:
        try:
            box_w, box_h = float(parts[2]), float(parts[3])
        except ValueError:
            pass
    has_box = bool(box_w and box_h and box_w > 0 and box_h > 0)
    if width and height:
        return width, height
    if width and has_box:
        return width, width * box_h / box_w  # type: ignore[operator]
    if height and has_box:
        return height * box_w / box_h, height  # type: ignore[operator]
    if has_box:
        return box_w, box_h  # type: ignore[return-value]
    return 300.0, 150.0

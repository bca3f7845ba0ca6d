"""Rasterise one SVG (stdin) to PNG (stdout) under memory and CPU limits; run as a script by ``svg.py``.

Standalone on purpose: it imports nothing of inbox_pipeline, so it starts in
the time CairoSVG takes to import, and it sets its limits before it reads a
byte of the untrusted document.

    python svg_worker.py WIDTH HEIGHT MEMORY_BYTES CPU_SECONDS < in.svg > out.png

Exit codes: 0 done, 3 CairoSVG unavailable, 4 out of memory, 5 the SVG
cannot be rendered (stderr says why). A signal (SIGXCPU, SIGKILL, SIGSEGV)
means the limits stopped it.
"""

from __future__ import annotations

import resource
import sys

UNAVAILABLE, OUT_OF_MEMORY, UNRENDERABLE = 3, 4, 5


def main(argv: list[str]) -> int:
    width, height, memory_bytes, cpu_seconds = (int(value) for value in argv[1:5])
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    try:
        import cairosvg  # needs the system's libcairo2
    except (ImportError, OSError) as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}")
        return UNAVAILABLE
    data = sys.stdin.buffer.read()
    try:
        # unsafe=False: no XML entities and only data: URLs inside the SVG, so no SSRF through it.
        png = cairosvg.svg2png(bytestring=data, output_width=width, output_height=height, unsafe=False)
    except MemoryError:
        return OUT_OF_MEMORY
    except Exception as exc:  # CairoSVG raises many kinds for bad input
        if "memory" in str(exc).lower():  # cairo's CAIRO_STATUS_NO_MEMORY comes as its own error type
            return OUT_OF_MEMORY
        sys.stderr.write(f"{type(exc).__name__}: {exc}"[:300])
        return UNRENDERABLE
    sys.stdout.buffer.write(png)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

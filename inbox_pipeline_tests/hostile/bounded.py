"""Run one hostile case in a forked child and measure it: wall time, CPU time, peak memory.

The child starts from the test process (fork: nothing to import again), resets
its peak-RSS mark, runs the case and sends back the case's outcome (a small
picklable value the test then asserts on). The time ceiling is CPU time, held
by the kernel (RLIMIT_CPU kills the child at it), so a busy shared machine
cannot fail a case that a quiet one passes; a child that waits without computing
is killed at ``HANG_FACTOR`` times the ceiling of wall time, so it fails instead
of hanging the suite. An address-space limit well above the memory ceiling keeps
a bomb from taking the shared machine down with it. The ceilings are generous:
they say "bounded", not "fast" (speed figures are in benchmarks/hostile.py).
"""

from __future__ import annotations

import math
import os
import pickle
import resource
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MB = 1024 * 1024
# Room above the memory ceiling before the child's address space is capped: threads,
# malloc arenas and mapped libraries count there without being resident.
ADDRESS_SPACE_HEADROOM = 3 * 1024 * MB
# Wall time, in CPU ceilings, after which a child that is not computing counts as hung.
HANG_FACTOR = 10


@dataclass(frozen=True)
class Measured:
    value: Any
    seconds: float  # wall time in the child
    cpu_seconds: float  # user + system
    peak_mb: float  # peak resident memory above the child's starting point


class CaseFailed(AssertionError):
    pass


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> int:
    """Reset VmHWM to the current RSS (Linux >= 4.0) and return that RSS in KB."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass  # an older kernel: the peak then includes the start, still an upper bound
    return _status_kb("VmRSS")


def _child(func: Callable[..., Any], args: tuple, kwargs: dict, seconds: float, megabytes: float) -> tuple:
    size_kb = _status_kb("VmSize")
    limit = size_kb * 1024 + int(megabytes * MB) + ADDRESS_SPACE_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu_limit = math.ceil(seconds)  # a forked child's CPU time starts at zero
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 1))  # SIGXCPU, then SIGKILL
    start_kb = _reset_peak()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    value = func(*args, **kwargs)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak_mb = (_status_kb("VmHWM") - start_kb) / 1024
    return ("ok", value, seconds, cpu, peak_mb)


def measure(func: Callable[..., Any], *args: Any, seconds: float, megabytes: float, **kwargs: Any) -> Measured:
    """Run ``func(*args, **kwargs)`` in a forked child; fail if it raises or passes a ceiling.

    ``seconds`` is a ceiling of CPU time (the child's own, all its threads).
    """
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_fd)
        try:
            try:
                payload = _child(func, args, kwargs, seconds, megabytes)
            except BaseException:  # noqa: BLE001 - everything goes back to the parent
                payload = ("error", traceback.format_exc(), 0.0, 0.0, 0.0)
            with os.fdopen(write_fd, "wb") as out:
                pickle.dump(payload, out)
        finally:
            os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + seconds * HANG_FACTOR
    chunks: list[bytes] = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise CaseFailed(f"hung: no answer after {seconds * HANG_FACTOR:g} s of wall time: killed")
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
    _, status, _usage = os.wait4(pid, 0)
    if not chunks:
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGXCPU, signal.SIGKILL):
            raise CaseFailed(f"over its CPU time ceiling of {seconds:g} s: killed")
        raise CaseFailed(f"the child died without an answer (wait status {status})")
    kind, value, took, cpu, peak = pickle.loads(b"".join(chunks))
    if kind == "error":
        raise CaseFailed(f"the case raised in its child:\n{value}")
    if peak > megabytes:
        raise CaseFailed(f"peak memory {peak:.0f} MB over its ceiling of {megabytes:g} MB")
    return Measured(value, took, cpu, peak)

"""Time and peak memory per hostile input class, each class in a fresh process.

Every class runs the core as a run's process would (``convert_email``: parse,
clean, images, cover, EPUB; image fetching off), or ``inbox-pipeline convert`` for the
oversized file, in its own ``python`` process, so one class's memory never
counts against another's. A child is killed at twice the CPU time ceiling and
capped at 4 GB of address space, so a bomb cannot take the machine with it.

    .venv/bin/python benchmarks/hostile.py [--only CLASS ...] [--repeat 1]

Ceilings (what an operator can plan a worker around), and why:
- time 15 s of CPU per email (the verdict uses CPU time, wall time is printed too): a batch run takes 100 emails in about a minute on 2 cores
  (benchmarks/e2e.py); one email 100x slower than the typical one (~0.1 s) is
  already an attack, and 15 s keeps a poisoned batch inside its run's budget.
- peak RSS 400 MB per process: a run's process (Dagster plus our code, about
  150 MB resident) must fit a 1 GB ECS task or Kubernetes pod with room for a
  second step; 400 MB is the per-email ceiling the hostile suite also enforces.
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CEILING_SECONDS = 15.0
CEILING_MB = 400.0
ADDRESS_SPACE = 4 * 1024**3


def _classes() -> dict[str, object]:
    """Class name -> a function building its input(s) (imported lazily, in the child)."""
    from inbox_pipeline_tests.hostile import inputs as i

    return {
        "baseline newsletter": lambda: [i.html_email(i.ARTICLE)],
        "scripts and active content": lambda: [i.html_email(i.with_article("".join(i.ACTIVE.values())))],
        "CSS": lambda: [i.html_email(i.with_article("".join(i.CSS.values())))],
        "MIME torture (12 inputs)": lambda: list(i.mime_torture().values()),
        "multipart nested 300 deep": lambda: [i.nested_multipart(300)],
        "subject of one 2,000-char word (cover)": lambda: [i.long_subject_email(2_000)],
        "subject of one 10,000-char word (cover)": lambda: [i.long_subject_email(10_000)],
        "SVG <use> bomb (cid:)": lambda: [i.image_email(i.svg_use_bomb(), "image/svg+xml")],
        "SVG <use> bomb (data: URL)": lambda: [i.data_url_email(i.svg_use_bomb(), "image/svg+xml")],
        "PNG bomb inside SVG (144 MP)": lambda: [i.image_email(i.svg_with_png(12_000), "image/svg+xml")],
        "100-megapixel RGBA PNG": lambda: [i.image_email(i.png_bomb(10_000, rgba=True), "image/png")],
        "400-megapixel PNG (over Pillow's limit)": lambda: [i.image_email(i.png_bomb(20_000), "image/png")],
        "100,000 nested <div>s": lambda: [i.deep_divs(100_000)],
        "not mail (4 inputs)": lambda: list(i.not_mail().values()),
        "1 GB file (inbox-pipeline convert)": None,  # special-cased: a sparse file
    }


def run_one(name: str) -> None:
    """In the child: build the inputs (not measured), then convert them."""
    from inbox_pipeline.core.convert import ConvertOptions, convert_email
    from inbox_pipeline.core.message import EmailParseError

    from inbox_pipeline_tests.hostile.inputs import ARTICLE, html_email

    options = ConvertOptions(fetch_images=False)
    convert_email(html_email(ARTICLE), options=options)  # the lazy imports, outside the measurement
    if name.startswith("1 GB file"):
        from inbox_pipeline_tests.hostile.inputs import sparse_file

        import contextlib
        import io

        from inbox_pipeline.cli import main as cli

        with tempfile.TemporaryDirectory() as tmp:
            path = sparse_file(Path(tmp) / "huge.eml", 1024**3)
            print("START", flush=True)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = cli(["convert", str(path), "-o", str(Path(tmp) / "huge.epub")])
            print(f"OUTCOME exit {code}: {err.getvalue().strip()[:70]}", flush=True)
            print(f"CPU {time.process_time() - cpu0} {time.perf_counter() - wall0} {_peak_kb()}", flush=True)
        return
    raws = _classes()[name]()
    print("START", flush=True)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcomes = []
    for raw in raws:
        try:
            conv = convert_email(raw, options=options)
            outcomes.append(f"book ({conv.words} words, {conv.images_dropped} image(s) dropped)")
        except EmailParseError as exc:
            outcomes.append(f"refused: {str(exc)[:60]}")
    print("OUTCOME " + "; ".join(dict.fromkeys(outcomes)), flush=True)
    print(f"CPU {time.process_time() - cpu0} {time.perf_counter() - wall0} {_peak_kb()}", flush=True)


def _peak_kb() -> int:
    """This process's peak resident memory (VmHWM), in KB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _limit_child() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _cpu_of(pid: int, ticks: int) -> float:
    """User + system CPU seconds of a running process (its threads included)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / ticks


def measure(name: str) -> dict:
    """Run one class in a fresh interpreter; wall time from its START line, peak RSS of the process."""
    command = [sys.executable, __file__, "--child", name]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_limit_child, cwd=ROOT)
    started = wall = None
    outcome = ""
    cpu = float("nan")  # of the measured part, reported by the child; unknown when it was killed
    peak_kb = None
    killed = False
    ticks = os.sysconf("SC_CLK_TCK")
    safety = time.monotonic() + 600  # wall time, only against a child that never gets the CPU
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    while True:
        # Killed on its CPU time, not wall time: on a shared machine wall time measures the neighbours.
        if _cpu_of(proc.pid, ticks) - (started or 0.0) > 2 * CEILING_SECONDS + (0 if started else 60) \
                or time.monotonic() > safety:
            proc.kill()
            killed = True
            break
        if not sel.select(0.5):
            continue
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("START"):
            started = _cpu_of(proc.pid, ticks)
        elif line.startswith("OUTCOME"):
            outcome = line[len("OUTCOME "):].strip()
        elif line.startswith("CPU"):
            cpu, wall, peak_kb = (float(v) for v in line.split()[1:4])
    _, status, usage = os.wait4(proc.pid, 0)
    if killed:
        cpu = usage.ru_utime + usage.ru_stime - (started or 0.0)  # at least this much
    stderr = proc.stderr.read() if not killed else ""
    if not killed and status != 0:
        outcome = outcome or f"crashed: {stderr.strip().splitlines()[-1] if stderr.strip() else status}"
    return {
        "seconds": wall if wall is not None else float("nan"),
        "cpu": cpu,
        # The child's own VmHWM; when it was killed, ru_maxrss (it may include this process's at the fork).
        "peak_mb": (peak_kb if peak_kb is not None else usage.ru_maxrss) / 1024,
        "killed": killed,
        "outcome": outcome or ("killed at twice the CPU time ceiling" if killed else ""),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="class names (substring match)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.child)
        return 0
    names = [n for n in _classes() if not args.only or any(o.lower() in n.lower() for o in args.only)]
    print(f"hostile inputs, one fresh process per class; ceilings {CEILING_SECONDS:g} s and {CEILING_MB:g} MB peak RSS")
    print(f"{'class':<42} {'wall s':>8} {'cpu s':>7} {'peak MB':>8}  {'verdict':<7} outcome")
    over = 0
    for name in names:
        r = measure(name)
        # CPU time against the time ceiling: on a shared machine wall time measures the neighbours.
        ok = not r["killed"] and r["cpu"] <= CEILING_SECONDS and r["peak_mb"] <= CEILING_MB
        over += not ok
        wall = "killed" if r["killed"] else f"{r['seconds']:.2f}"
        print(f"{name:<42} {wall:>8} {r['cpu']:>7.2f} {r['peak_mb']:>8.0f}  {'ok' if ok else 'OVER':<7} {r['outcome'][:90]}",
              flush=True)
    print(f"{len(names) - over} of {len(names)} classes within both ceilings")
    return 0


if __name__ == "__main__":
    sys.exit(main())

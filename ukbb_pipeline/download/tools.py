"""Running the download tools: found on PATH or at a given path, started with argument lists (never a shell), and
tracked so that an interrupted run stops the processes it started."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class ToolNotFound(FileNotFoundError):
    """The ukbfetch or dx executable is not there; the message says which setting points at it."""


def find_executable(spec: str, *, setting: str) -> str:
    """The absolute path of ``spec`` (a name looked up on PATH, or a path), or :class:`ToolNotFound`."""
    name = Path(spec).name
    if os.sep in spec or (os.altsep and os.altsep in spec):
        path = Path(spec).expanduser().absolute()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        state = "is not executable" if path.is_file() else "does not exist"
        raise ToolNotFound(f"{name} at {path} {state} (set {setting}=<path to {name}>)")
    found = shutil.which(spec)
    if found is None:
        raise ToolNotFound(f"{spec} not found on PATH (install it, or set {setting}=<path to {spec}>)")
    return str(Path(found).absolute())


@dataclass(frozen=True)
class ToolRun:
    """How one call of a tool ended. ``returncode`` is None when it did not start or was stopped."""

    returncode: int | None
    output: str  # stdout then stderr, already scrubbed of secrets
    seconds: float
    error: str = ""  # why there is no return code: "timed out after ...", "cannot start: ..."

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        """A one-line account of a failed call: the error or exit code and the tool's last message."""
        what = self.error or f"exit code {self.returncode}"
        return f"{what}: {self.last_message()}" if self.last_message() else what

    def last_message(self, limit: int = 200) -> str:
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        return lines[-1][:limit] if lines else ""

    def messages_about(self, token: str, limit: int = 200) -> str:
        """The tool's lines that mention ``token`` (a file's stem or datafile), joined, or ''."""
        lines = [line.strip() for line in self.output.splitlines() if token in line]
        return " | ".join(lines)[:limit]


class ChildProcesses:
    """Starts tool processes and remembers the running ones, so that :meth:`stop_all` can end exactly those."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self._stopping = False

    def run(
        self, argv: Sequence[str], *, cwd: Path, timeout_s: float, scrub: Callable[[str], str] = str
    ) -> ToolRun:
        """Run ``argv`` in ``cwd`` and wait for it (at most ``timeout_s``), capturing its output as text."""
        started = time.monotonic()
        try:
            with self._lock:
                if self._stopping:
                    return ToolRun(None, "", 0.0, error="not started: the run is stopping")
                process = subprocess.Popen(
                    list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True, errors="replace",
                )
                self._running.add(process)
        except OSError as error:
            return ToolRun(None, "", time.monotonic() - started, error=f"cannot start {argv[0]}: {error.strerror}")
        problem = ""
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            problem = f"timed out after {timeout_s:g} s"
        finally:
            with self._lock:
                self._running.discard(process)
        returncode = None if problem else process.returncode
        if returncode is not None and returncode < 0:
            problem, returncode = f"stopped by signal {-returncode}", None
        output = scrub("\n".join(part for part in (stdout, stderr) if part))
        return ToolRun(returncode, output, time.monotonic() - started, error=problem)

    def stop_all(self, grace_s: float = 5.0) -> None:
        """Terminate the processes still running (then kill those that linger) and start no new ones."""
        with self._lock:
            self._stopping = True
            running = list(self._running)
        for process in running:
            process.terminate()
        deadline = time.monotonic() + grace_s
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()

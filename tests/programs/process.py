"""A real program run as a child process, with its output kept in a log file."""

from __future__ import annotations

import atexit
import ctypes
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Self

from .ports import LOOPBACK, port_accepts, wait_until

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


class ProgramError(RuntimeError):
    """A program did not start, or did not stop, as asked."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGKILL the child if the thread that started it dies (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, ctypes.c_ulong(int(signal.SIGKILL)))
    except (OSError, AttributeError):  # not Linux: the atexit hook still cleans up
        return


class ManagedProcess:
    """One child process on a loopback port: start, stop (SIGTERM), kill (SIGKILL), restart.

    Subclasses provide :meth:`command` (argv) and may override :meth:`is_ready`
    (default: the TCP port accepts connections). The port and the work directory
    stay the same across restarts, so state on disk survives a restart.
    Everything the process writes to stdout/stderr goes to ``output.log`` in the
    work directory; :meth:`log_text` returns it.
    """

    name = "program"
    start_timeout = 20.0
    stop_timeout = 20.0

    def __init__(self, workdir: Path, port: int, host: str = LOOPBACK) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._host = host
        self._port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.output_path = self.workdir / "output.log"

    # -- to be provided by subclasses -------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        return port_accepts(self._host, self._port)

    def environment(self) -> dict[str, str] | None:
        """The child's environment; None: this process's."""
        return None

    # -- properties --------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- life cycle --------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> None:
        """Start the program and wait until it is ready; raise ProgramError otherwise."""
        if self.running:
            raise ProgramError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        with open(self.output_path, "ab") as out:
            out.write(f"===== start {self.starts} at {time.time():.3f} =====\n".encode())
            out.flush()
            in_main_thread = threading.current_thread() is threading.main_thread()
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.environment(),
                # Only the main thread lives as long as the test run; a child tied
                # to a short-lived worker thread would die with that thread.
                preexec_fn=_die_with_parent if in_main_thread else None,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        proc = self._proc
        ready = wait_until(
            self.is_ready,
            timeout if timeout is not None else self.start_timeout,
            give_up=lambda: proc.poll() is not None,
        )
        if not ready:
            code = proc.poll()
            self.kill()
            state = f"exited with {code}" if code is not None else "was not ready in time"
            raise ProgramError(f"{self.name} {state}; its output:\n{self.log_text()[-4000:]}")

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM and wait (the program saves its state); SIGKILL if it takes too long.

        Returns the exit code, or None if it was not running.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout if timeout is not None else self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self._forget()
                raise ProgramError(f"{self.name} ignored SIGTERM; killed it") from None
        self._forget()
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL: the program gets no chance to save anything (a crash or power cut)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._forget()
        return proc.returncode

    def restart(self, timeout: float | None = None) -> None:
        """Stop cleanly (SIGTERM) and start again on the same port with the same data."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop if running; killing it if it will not stop. Safe to call twice."""
        try:
            self.stop()
        except ProgramError:
            pass

    def _forget(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)

    # -- diagnostics -------------------------------------------------------------------
    def log_text(self) -> str:
        """Everything the program wrote to stdout/stderr, all starts included."""
        try:
            return self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {self._host}:{self._port} {state}>"


@atexit.register
def _kill_leftovers() -> None:
    """Last resort: no child outlives the test run, whatever a test did."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for program in leftovers:
        try:
            program.kill()
        except (OSError, subprocess.SubprocessError):
            continue

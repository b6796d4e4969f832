"""Local checks as a source: each check (gateway.sources.check) runs every
`min_collection_interval` in a thread of its own, and what it found is handed on as
one message, `readings` JSON, from the check's own device (profile check).

A run that raises, or takes longer than `timeout`, is counted
(`gateway.check_runs{result=error|timeout}`), logged once for each new reason, and
named in status and /health until a run succeeds; a run still going when the next
is due is not doubled (counted `skipped`). A hanging check costs its own thread
only: ingest, the other checks and the gateway carry on. A custom check's file is
loaded when the gateway starts; one that cannot be (a syntax error, no Check class)
is named the same way, and `gateway check` names a syntax error by file and line.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.config.checks import CheckConfig
from gateway.health.stats import Stats
from gateway.model import RawMessage
from gateway.sources.base import Source, Submit
from gateway.sources.check import Check
from gateway.sources.checks_builtin import BUILT_IN

log = logging.getLogger("gateway.checks")


def load_custom(path: Path, name: str) -> type[Check]:
    """The one Check subclass defined in `path`; raises with a sentence when there is
    none, more than one, or the file cannot be run."""
    spec = importlib.util.spec_from_file_location(f"gateway_check_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [c for _, c in inspect.getmembers(module, inspect.isclass)
             if issubclass(c, Check) and c is not Check and c.__module__ == module.__name__]
    if len(found) != 1:
        raise ImportError(f"{path} defines {len(found)} subclasses of "
                          "gateway.sources.check.Check; it must define exactly one")
    return found[0]


class _Runner:
    def __init__(self, config: CheckConfig, check: Check | None, problem: str) -> None:
        self.config = config
        self.check = check
        self.problem = problem
        self.logged = problem
        self.running: threading.Thread | None = None


class ChecksSource(Source):
    kind = "check"

    def __init__(self, checks: tuple[CheckConfig, ...], config_dir: Path, clock: Clock,
                 stats: Stats, submit: Submit,
                 defaults: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__("checks")
        self.clock = clock
        self.stats = stats
        self.submit = submit
        self.runners: list[_Runner] = []
        for c in checks:
            options = {**(defaults or {}).get(c.type, {}), **dict(c.options)}
            try:
                cls = BUILT_IN[c.type] if c.type != "custom" else \
                    load_custom(config_dir / c.file, c.name)
                self.runners.append(_Runner(c, cls(c.name, options, clock), ""))
            except Exception as exc:  # noqa: BLE001 - a user's file may raise anything
                why = f"cannot load {c.file}: {type(exc).__name__}: {exc}"
                log.error("check %s: %s", c.name, why)
                self.runners.append(_Runner(c, None, why))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for runner in self.runners:
            if runner.check is None:
                continue
            thread = threading.Thread(target=self._guarded, args=(runner,),
                                      name=f"check-{runner.config.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def ready(self) -> bool:
        return not any(r.problem for r in self.runners)

    def problem(self) -> str:
        return "; ".join(f"check {r.config.name}: {r.problem}" for r in self.runners
                         if r.problem)

    def status(self) -> dict[str, Any]:
        return {"type": "checks", "checks": {r.config.name: r.problem or "ok"
                                             for r in self.runners}}

    def _guarded(self, runner: _Runner) -> None:
        try:
            self._run(runner)
        except BaseException as exc:  # a bug here, not in the check: stop the gateway
            self.failure = exc
            log.exception("check %s: its runner died", runner.config.name)

    def _run(self, runner: _Runner) -> None:
        every = float(runner.config.min_collection_interval)
        due = self.clock.monotonic()
        while not self._stop.is_set():
            wait = due - self.clock.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            due = max(due + every, self.clock.monotonic())
            self._once(runner)

    def _once(self, runner: _Runner) -> None:
        name = runner.config.name
        if runner.running is not None and runner.running.is_alive():
            self._count(name, "skipped")
            return
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                assert runner.check is not None
                outcome["found"] = runner.check.run()
            except Exception as exc:  # noqa: BLE001 - a user's check may raise anything
                outcome["error"] = exc

        began = self.clock.now()
        runner.running = threading.Thread(target=work, name=f"check-{name}-run", daemon=True)
        runner.running.start()
        runner.running.join(float(runner.config.timeout))
        if runner.running.is_alive():
            self._failed(runner, "timeout", f"a run took longer than "
                                            f"{float(runner.config.timeout):g} s (still running)")
            return
        error = outcome.get("error")
        if error is not None:
            self._failed(runner, "error", f"{type(error).__name__}: {error}")
            return
        self._count(name, "ok")
        if runner.problem:
            log.info("check %s: running again", name)
        runner.problem = runner.logged = ""
        found = outcome.get("found") or []
        if found:
            self.submit(RawMessage(name, json.dumps(found).encode(), began, kind="check"), None)

    def _failed(self, runner: _Runner, result: str, why: str) -> None:
        self._count(runner.config.name, result)
        runner.problem = why
        if why != runner.logged:  # once for each new reason, not every run
            runner.logged = why
            log.warning("check %s: %s", runner.config.name, why)

    def _count(self, name: str, result: str) -> None:
        self.stats.inc("gateway.check_runs", check=name, result=result)

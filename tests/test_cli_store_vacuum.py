"""`gateway store vacuum`: free space inside the store goes back to the file system."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from gateway.model import Reading
from gateway.store.lock import StoreLock
from gateway.store.outbox import Outbox
from gateway.store.schema import DDL

ROOT = Path(__file__).resolve().parents[1]


def store_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m gateway store <args>`, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "gateway", "store", *args],
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def after_a_backlog(data_dir: Path, keep: int = 100) -> None:
    """A store that held 50,000 readings, all but the last `keep` since delivered and purged."""
    box = Outbox(data_dir)
    box.register_sinks(["vm"])
    box.append(Reading("plug.power", float(i), 1_763_634_900 + i / 10, "gauge", "W",
                       {"device": "kettle"}) for i in range(50000))
    box.commit()
    rows = box.rows_after(0, 50000)
    box.confirm("vm", rows[-keep - 1].id)
    box.purge()
    box.close()


def exported(data_dir: Path) -> list[str]:
    return store_cli("export", "--data-dir", str(data_dir)).stdout.splitlines()


def test_vacuum_gives_the_space_of_delivered_readings_back(tmp_path):
    after_a_backlog(tmp_path)
    db = tmp_path / "gateway.db"
    before = db.stat().st_size
    waiting = exported(tmp_path)

    shown = store_cli("vacuum", "--data-dir", str(tmp_path))

    assert shown.returncode == 0, shown.stderr
    assert db.stat().st_size < before / 4
    assert re.search(r"incremental vacuum: ([\d,]+) of \1 free pages given back",
                     shown.stderr), shown.stderr
    found = re.search(r"file size: ([\d.]+) (kB|MB) -> ([\d.]+) (kB|MB) \(", shown.stdout)
    assert found, shown.stdout
    assert exported(tmp_path) == waiting and len(waiting) == 100


def test_vacuum_rewrites_a_store_made_without_incremental_auto_vacuum(tmp_path):
    db = tmp_path / "gateway.db"
    old = sqlite3.connect(db)  # as an older gateway made it: auto_vacuum off
    old.executescript(DDL)
    old.close()
    after_a_backlog(tmp_path)
    before = db.stat().st_size
    waiting = exported(tmp_path)

    shown = store_cli("vacuum", "--data-dir", str(tmp_path))

    assert shown.returncode == 0, shown.stderr
    assert "rewriting it whole (VACUUM)" in shown.stdout
    assert db.stat().st_size < before / 4
    assert "file size: " in shown.stdout
    assert exported(tmp_path) == waiting
    stats = json.loads(store_cli("stats", "--json", "--data-dir", str(tmp_path)).stdout)
    assert stats["auto_vacuum"] == "incremental"  # the gateway can give space back itself now


def test_vacuum_is_refused_while_a_gateway_runs_on_the_store(tmp_path):
    after_a_backlog(tmp_path)
    db = tmp_path / "gateway.db"
    before = db.stat().st_size
    lock = StoreLock(tmp_path)
    lock.acquire()  # as a running gateway does
    try:
        refused = store_cli("vacuum", "--data-dir", str(tmp_path))
    finally:
        lock.release()
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "a gateway is running on it); stop it first" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert db.stat().st_size == before


def test_vacuum_of_a_store_that_is_not_there(tmp_path):
    shown = store_cli("vacuum", "--data-dir", str(tmp_path / "data"))
    assert shown.returncode == 1
    assert f"no store at {tmp_path / 'data' / 'gateway.db'}" in shown.stderr
    assert not (tmp_path / "data").exists()  # nothing made at a wrong path

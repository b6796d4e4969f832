"""`gateway store check`: SQLite's own check of the store, and `--repair` of a damaged one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from gateway.model import Reading
from gateway.sinks.jsonlines import line_for
from gateway.store.lock import StoreLock
from gateway.store.outbox import Outbox

ROOT = Path(__file__).resolve().parents[1]
PAGE = 4096


def store_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m gateway store <args>`, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "gateway", "store", *args],
                          env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def fill(data_dir: Path, n: int = 20000) -> list[bytes]:
    """A closed store of `n` readings waiting for sink vm; returns their export lines."""
    box = Outbox(data_dir)
    box.register_sinks(["vm"])
    box.append(Reading("plug.power", float(i), 1_763_634_900 + i, "gauge", "W",
                       {"device": "kettle"}) for i in range(n))
    box.commit()
    lines = [line_for(r) for r in box.rows_after(0, n)]
    box.close()
    return lines


def damage(data_dir: Path) -> None:
    """Overwrite three pages in the middle of the (closed) store file, as a bad SD card might."""
    path = data_dir / "gateway.db"
    pages = path.stat().st_size // PAGE
    with path.open("r+b") as f:
        f.seek(pages // 2 * PAGE)
        f.write(b"\xa5" * 3 * PAGE)


def test_a_sound_store_is_sound(tmp_path):
    fill(tmp_path, 500)
    quick = store_cli("check", "--data-dir", str(tmp_path))
    assert quick.returncode == 0, quick.stderr
    assert quick.stdout == f"{tmp_path / 'gateway.db'}: sound (quick_check)\n"
    full = store_cli("check", "--full", "--data-dir", str(tmp_path))
    assert full.returncode == 0, full.stderr
    assert "sound (integrity_check)" in full.stdout


def test_a_damaged_store_is_reported_with_what_to_do(tmp_path):
    fill(tmp_path)
    damage(tmp_path)
    shown = store_cli("check", "--data-dir", str(tmp_path))
    assert shown.returncode == 1
    assert f"{tmp_path / 'gateway.db'}: damaged: quick_check found" in shown.stdout
    assert "malformed" in shown.stdout
    assert "start the gateway" in shown.stdout
    assert f"gateway store check --repair --data-dir {tmp_path}" in shown.stdout
    assert not list(tmp_path.glob("gateway.db.corrupt-*"))  # a check alone moves nothing


def test_repair_moves_the_damaged_store_aside_and_keeps_what_can_be_read(tmp_path):
    original = fill(tmp_path)
    damage(tmp_path)

    repaired = store_cli("check", "--repair", "--data-dir", str(tmp_path))

    assert repaired.returncode == 0, repaired.stderr
    moved = [p for p in tmp_path.glob("gateway.db.corrupt-*")
             if not p.name.endswith(("-wal", "-shm"))]
    assert len(moved) == 1
    assert f"moved to {moved[0]}" in repaired.stdout
    found = re.search(r"repaired: .*salvaged (\d+) readings, at most (\d+) unreadable",
                      repaired.stdout)
    assert found, repaired.stdout
    salvaged, unreadable = int(found.group(1)), int(found.group(2))
    assert 0 < salvaged < len(original) and unreadable > 0
    assert re.search(r"sink vm: at most [\d,]+ readings it had not confirmed could not be "
                     r"read", repaired.stdout)

    again = store_cli("check", "--data-dir", str(tmp_path))
    assert again.returncode == 0 and "sound (quick_check)" in again.stdout
    exported = store_cli("export", "--data-dir", str(tmp_path)).stdout.encode()
    lines = exported.splitlines(keepends=True)
    assert len(lines) == salvaged
    assert set(lines) <= set(original)  # every salvaged reading is one that was stored
    stats = store_cli("stats", "--data-dir", str(tmp_path)).stdout
    assert "recovered: moved to" in stats
    assert re.search(r"corrupt: vm, -: \d+", stats)


def test_repair_is_refused_while_a_gateway_holds_the_store(tmp_path):
    fill(tmp_path)
    damage(tmp_path)
    lock = StoreLock(tmp_path)
    lock.acquire()  # as a running gateway does
    try:
        refused = store_cli("check", "--repair", "--data-dir", str(tmp_path))
    finally:
        lock.release()
    assert refused.returncode == 1
    assert f"is in use by pid {os.getpid()}" in refused.stderr
    assert "stop it first" in refused.stderr
    assert not list(tmp_path.glob("gateway.db.corrupt-*"))
    assert "Traceback" not in refused.stderr

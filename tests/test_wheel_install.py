"""A wheel works on its own: built, installed in a fresh virtual environment, it has
its device profiles and checks and decodes with them.

The built-in profiles live in devices/ at the top of the repository, where
people look for them and add theirs; a wheel must carry copies (a checkout
finds them through the source tree, which a wheel does not have). The fresh
environment gets the wheel alone; its dependencies come from the project's
environment by a path file (not its .pth files: the editable install there
must not shadow the wheel), and nothing runs from the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=240, **kw)


def test_a_wheel_installed_alone_checks_and_decodes_with_its_profiles(tmp_path):
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                  "--disable-pip-version-check", "-w", str(tmp_path / "dist"), str(REPO)],
                 tmp_path)
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("edge_gateway-*.whl")

    venv = tmp_path / "fresh"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                tmp_path).returncode == 0
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     tmp_path).stdout.strip())
    installed = _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q",
                      "--disable-pip-version-check", "--target", str(site), str(wheel)],
                     tmp_path)
    assert installed.returncode == 0, installed.stderr
    (site / "project-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    # Run from a folder of its own, not the checkout.
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": "", "GATEWAY_CONFIG": str(
        REPO / "deploy" / "examples" / "hall.yaml")}
    where = _run([str(py), "-c", "import gateway, gateway.profiles.library as l; "
                                 "print(gateway.__file__); print(l.BUILTIN_DIR)"], work, env=env)
    module, builtin = where.stdout.split()
    assert module.startswith(str(site)) and builtin.startswith(str(site)), where.stdout

    gateway = [str(py), "-m", "gateway"]
    checked = _run([*gateway, "check"], work, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "defib-socket" in checked.stdout  # the devices, with the topics they read

    decoded = _run([*gateway, "decode", "--device", "defib-socket", "--topic",
                    "tele/defib_socket/SENSOR", "--payload",
                    json.dumps({"ENERGY": {"Power": 38, "Voltage": 238}})], work, env=env)
    assert decoded.returncode == 0, decoded.stdout + decoded.stderr
    assert "plug.power" in decoded.stdout and "38" in decoded.stdout

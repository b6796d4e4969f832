"""Imports point one way: the layers of the README's "How it is built", in code.

A module may import its own layer and the layers below it, never one above:
records and counters at the bottom, then the config, the parts that each do one
job (sources, profiles, store, sinks: these do not know each other), the
pipeline that joins them, the control plane beside it, the process around it,
and the commands on top. A wrong-way import is how a house grows knots: the
store that learns about a sink, the CLI's helper that the service must import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "gateway"

#: lowest first; a module's layer is that of its longest matching prefix
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["gateway", "gateway.model", "gateway.clock", "gateway.health.stats",
                    "gateway.health.ownmetrics", "gateway.worker"]),
    # The control plane's settings live beside it but belong to the config: the root
    # config composes them, and they import nothing of the machinery.
    ("config", ["gateway.config", "gateway.monitors.config", "gateway.monitors.template",
                "gateway.monitors.calendar", "gateway.notify.config"]),
    ("connections", ["gateway.net"]),
    ("parts", ["gateway.sources", "gateway.profiles", "gateway.store", "gateway.sinks"]),
    # The config loader checks devices against their profiles and lists components'
    # options for the README: it sits above the parts it composes.
    ("pipeline", ["gateway.ingest", "gateway.forward", "gateway.state",
                  "gateway.config.load", "gateway.config.reference", "gateway.config.readme"]),
    ("control plane", ["gateway.health", "gateway.monitors", "gateway.notify",
                       "gateway.homeassistant", "gateway.provision"]),
    ("process", ["gateway.web", "gateway.app"]),
    ("commands", ["gateway.cli", "gateway.demo", "gateway.__main__"]),
]

#: parts that do one job each and must not know one another
INDEPENDENT = "parts"


def layer_of(module: str) -> tuple[int, str]:
    best: tuple[int, int, str] | None = None  # (prefix length, layer index, package)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index, prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[1], best[2]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every gateway module `path` imports, at any depth (function-level ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "gateway" or node.module.startswith("gateway."):
                for alias in node.names:  # `from gateway.cli import store` is a module
                    sub = f"{node.module}.{alias.name}"
                    is_module = (root.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                    found.append((node.lineno, sub if is_module else node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names
                         if a.name == "gateway" or a.name.startswith("gateway."))
    return found


def wrong_way(root: Path = ROOT) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        here = module_name(path, root)
        mine, my_package = layer_of(here)
        for line, target in imports(path, root):
            theirs, their_package = layer_of(target)
            where = f"{path.relative_to(root.parent)}:{line} imports {target}"
            if theirs > mine:
                problems.append(f"{where}: layer '{LAYERS[mine][0]}' may not import "
                                f"layer '{LAYERS[theirs][0]}' (above it)")
            elif (theirs == mine and LAYERS[mine][0] == INDEPENDENT
                  and their_package != my_package):
                problems.append(f"{where}: {my_package} and {their_package} are parts of "
                                "their own; what they share belongs lower (gateway.model, "
                                "gateway.config, gateway.net)")
    return problems


def test_every_module_is_in_a_layer():
    for path in ROOT.rglob("*.py"):
        layer_of(module_name(path))


def test_imports_point_one_way():
    assert wrong_way() == []


def test_a_wrong_way_import_is_caught(tmp_path):
    # The check itself can fail: a copy of the tree where the store imports a sink.
    copy = tmp_path / "gateway"
    for path in ROOT.rglob("*.py"):
        target = copy / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    (copy / "store" / "knot.py").write_text("from gateway.sinks.base import Sink\n")
    (copy / "config" / "knot.py").write_text("from gateway.app.gateway import Gateway\n")
    found = wrong_way(copy)
    assert any("store/knot.py:1 imports gateway.sinks.base" in p for p in found), found
    assert any("config/knot.py:1 imports gateway.app.gateway: layer 'config' may not "
               "import layer 'process'" in p for p in found), found

"""Imports point one way (docs/ARCHITECTURE.md): protocol <- log <- {replication, groups,
controller, metrics} <- {server, console} <- cluster (the local cluster launcher) <- {cli,
testing}. The console imports nothing of the broker: it talks to it over the Kafka
protocol. A package may import its own modules and the layers below it, never a layer
above nor a peer of its own layer. Imports made only for type checking count too: they
are the same dependency, postponed."""
from __future__ import annotations

import ast
from pathlib import Path

import moldau

ROOT = Path(moldau.__file__).parent
LAYERS: dict[str, int] = {
    "protocol": 0,
    "log": 1,
    "replication": 2, "groups": 2, "controller": 2, "metrics": 2, "transactions": 2, "authorizer": 2, "quotas": 2,
    "server": 3, "console": 3,
    "cluster": 4,
    "cli": 5, "testing": 5, "chaos": 5,
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(moldau package, line) of every import of moldau in the file."""
    out: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "moldau" and len(parts) > 1:
                out.add((parts[1], node.lineno))
    return out


def violations() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if len(rel.parts) < 2:
            continue
        package = rel.parts[0]
        assert package in LAYERS, f"moldau/{package}/ has no layer: add it to LAYERS and to docs/ARCHITECTURE.md"
        for target, line in imported_packages(path):
            if target == package or target not in LAYERS:
                continue
            if LAYERS[target] >= LAYERS[package]:
                found.append(f"moldau/{rel}:{line} imports moldau.{target}")
    return found


def test_imports_point_one_way() -> None:
    assert violations() == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "x.py"
    bad.write_text("from moldau.server.broker import Broker\nimport moldau.cli.main\n")
    assert imported_packages(bad) == {("server", 1), ("cli", 2)}

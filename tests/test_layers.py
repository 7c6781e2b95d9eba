"""The layers of the house: imports run one way, and one module reads the environment.

foundation (``gateway.*`` modules) -> ``gateway.cache`` -> ``gateway.upstreams`` -> ``schema``
-> ``gateway.server``. The simulator stands beside them on the foundation alone; only the
server (the demo command) runs it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {
    "foundation": 0,
    "gateway.cache": 1,
    "gateway.upstreams": 2,
    "schema": 3,
    "gateway.server": 4,
}


def layer_of(module: str) -> str | None:
    """The layer a module of the project belongs to, or None for a third-party module."""
    if module.startswith("gateway.simulator"):
        return "simulator"
    for prefix in ("gateway.cache", "gateway.upstreams", "gateway.server"):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    if module == "schema" or module.startswith("schema."):
        return "schema"
    if module == "gateway" or module.startswith("gateway."):
        return "foundation"
    return None


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in ("gateway", "schema"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).with_suffix("")
            parts = list(relative.parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append((".".join(parts), path))
    return found


def imported(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def test_the_layout_has_each_layer() -> None:
    layers = {layer_of(name) for name, _ in modules()}
    assert layers >= {*LAYERS, "simulator"}


@pytest.mark.parametrize(("module", "path"), modules(), ids=[name for name, _ in modules()])
def test_imports_run_one_way(module: str, path: Path) -> None:
    own = layer_of(module)
    assert own is not None
    for name in imported(path):
        other = layer_of(name)
        if other is None or other == own:
            continue
        if own == "simulator":
            assert other == "foundation", f"{module} imports {name}: the simulator stands alone"
            continue
        if other == "simulator":
            # The command line's demo runs it; nothing below the server knows of it.
            assert own == "gateway.server", f"{module} imports the simulator ({name})"
            continue
        assert LAYERS[other] <= LAYERS[own], (
            f"{module} ({own}) imports {name} ({other}), a layer above"
        )


def test_only_the_configuration_reads_the_environment() -> None:
    readers = [
        name
        for name, path in modules()
        if any(word in path.read_text() for word in ("os.environ", "os.getenv", "getenv("))
    ]
    assert readers == ["gateway.config"]

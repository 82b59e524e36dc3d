"""The package's layout: imports run one way (no cycle between modules or between folders),
networks never import Lightning, and the command line starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import inpaintlab

PACKAGE = Path(inpaintlab.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """Every inpaintlab module that `path` imports anywhere (function bodies and
    TYPE_CHECKING blocks included): `from a.b import c` counts a.b.c when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in MODULES}


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports. The package root's only import is its lazy
    `Inpainter` attribute, the public entry rather than a dependency: modules may read
    `__version__` from the root without closing a cycle."""
    graph = {name: imported_modules(path) - {name} for name, path in MODULES.items()}
    graph["inpaintlab"] = set()
    return graph


def folder(module: str) -> str:
    """The top folder of a module below the package root (`models` for inpaintlab.models.base)."""
    return module.split(".")[1] if module.count(".") else module


def folder_graph() -> dict[str, set[str]]:
    """Which folder imports which (the package root, a module of its own, left out)."""
    graph: dict[str, set[str]] = {}
    for module, imports in import_graph().items():
        if module == "inpaintlab":
            continue
        graph.setdefault(folder(module), set()).update(
            folder(name)
            for name in imports
            if name != "inpaintlab" and folder(name) != folder(module)
        )
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `graph` as a path that ends where it starts, or None."""
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        if state.get(node) == "open":
            return path[path.index(node) :] + [node]
        if state.get(node) == "done":
            return None
        state[node] = "open"
        for neighbour in sorted(graph.get(node, ())):
            if cycle := visit(neighbour, [*path, node]):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if cycle := visit(start, []):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_the_graph_sees_function_local_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from inpaintlab.errors import ConfigError\n")
    assert imported_modules(module) == {"inpaintlab.errors"}


def test_no_module_imports_itself_back():
    assert find_cycle(import_graph()) is None


def test_folders_import_one_way():
    assert find_cycle(folder_graph()) is None


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("data", "models"),
        ("networks", "models"),
        ("losses", "models"),
        ("metrics", "models"),
        ("models", "training"),
        ("models", "evaluation"),
        ("evaluation", "training"),
        ("training", "apps"),
        ("evaluation", "apps"),
    ],
)
def test_the_documented_direction_holds(lower, upper):
    """data / networks / losses / metrics -> models -> evaluation -> training -> apps."""
    reachable, frontier = set(), {lower}
    graph = folder_graph()
    while frontier:
        frontier = {n for f in frontier for n in graph.get(f, ())} - reachable
        reachable |= frontier
    assert upper not in reachable


def test_networks_and_losses_never_import_lightning():
    for name, path in MODULES.items():
        if folder(name) in {"networks", "losses", "ops"}:
            assert "lightning" not in path.read_text(), name


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_command_line_answers_help_and_version_without_torch():
    result = run_python(
        "import sys\n"
        "from inpaintlab.apps.cli import main\n"
        "for flag in ('--help', '--version'):\n"
        "    try:\n"
        "        main([flag])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "heavy = sorted(loaded & {'torch', 'pytorch_lightning', 'hydra'})\n"
        "print('heavy:', heavy)\n"
    )
    assert result.returncode == 0, result.stderr
    assert f"inpaintlab {inpaintlab.__version__}" in result.stdout
    assert "heavy: []" in result.stdout


def test_import_inpaintlab_leaves_torch_alone_until_inpainter_is_used():
    result = run_python(
        "import sys, inpaintlab\n"
        "print('torch' in sys.modules)\n"
        "inpaintlab.Inpainter\n"
        "print('torch' in sys.modules)\n"
    )
    assert result.stdout.split() == ["False", "True"], result.stderr

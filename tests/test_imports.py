"""The layering of the installed package: no import cycle between steport's modules, counting
imports inside functions too, and the serving path never imports torch.

The import graph is read with ``ast`` from the installed package's files (what users run, not
the checkout). A module imports another when it has ``import a.b`` / ``from a import b``
anywhere in its body, at top level or inside a function; ``from pkg import name`` counts as
importing ``pkg.name`` when that is a module, else ``pkg``. Left out, because they never run
an import: ``if TYPE_CHECKING:`` blocks, and the implicit import of a module's parent
packages (counting it would put every module in a cycle with its package). Explicit imports
count both ways, so a package ``__init__`` importing its submodules while one of them imports
the package back (e.g. a family module taking ``register_model`` from ``models/__init__``)
is a cycle. The registry's ``"module:function"`` strings (translations, fallback bodies) are
data that export resolves; they are not imports of the registry."""
from __future__ import annotations

import ast
import graphlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = "steport"


def _package_root() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.submodule_search_locations, "steport is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """{dotted module name: (file, is a package __init__)} for every .py under root."""
    mods = {}
    for path in sorted(root.rglob("*.py")):
        parts = [PACKAGE, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        mods[".".join(parts)] = (path, is_package)
    return mods


def _is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom in the module, in functions and classes too, except those
    under ``if TYPE_CHECKING:`` (the else branch of such an if does run)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """{module: {imported steport module: line of the first such import}}."""
    mods = _modules(root)

    def owning_module(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {m: {} for m in mods}
    for mod, (path, is_package) in mods.items():
        here = mod.split(".") if is_package else mod.split(".")[:-1]
        for node in _import_nodes(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = here[: len(here) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source
                           for a in node.names]
            for t in targets:
                target = owning_module(t)
                if target and target != mod:
                    graph[mod].setdefault(target, node.lineno)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    try:
        graphlib.TopologicalSorter({m: set(deps) for m, deps in graph.items()}).prepare()
    except graphlib.CycleError as e:
        return list(reversed(e.args[1]))  # graphlib lists it against the import direction
    return None


def _describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in zip(cycle, cycle[1:])]
    return "import cycle: " + "; ".join(steps)


def test_no_import_cycle_in_the_installed_package():
    graph = import_graph(_package_root())
    assert len(graph) > 50, sorted(graph)  # the whole package was found, not a stub
    cycle = find_cycle(graph)
    assert cycle is None, _describe(cycle, graph)


def test_the_cycle_check_sees_function_level_and_parent_imports(tmp_path):
    """The checker itself: a cycle closed by an import inside a function, and one closed by
    a submodule importing its own package, are both found and named; a TYPE_CHECKING-only
    import is not an edge."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import os\n\ndef f():\n    from . import b\n")
    (pkg / "b.py").write_text("from steport.a import f\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from .d import X\n")
    (pkg / "d.py").write_text("from .c import Y\n")
    (pkg / "sub" / "__init__.py").write_text("from . import leaf\ndef register(): pass\n")
    (pkg / "sub" / "leaf.py").write_text("from . import register\n")
    graph = import_graph(pkg)
    assert graph["steport.a"] == {"steport.b": 4}
    assert graph["steport.c"] == {}
    assert graph["steport.sub.leaf"] == {"steport.sub": 1}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1]
    assert set(cycle) in ({"steport.a", "steport.b"}, {"steport.sub", "steport.sub.leaf"})
    (pkg / "b.py").write_text("")
    cycle = find_cycle(import_graph(pkg))
    assert set(cycle) == {"steport.sub", "steport.sub.leaf"}
    assert "steport.sub.leaf (line 1) -> steport.sub" in _describe(cycle, import_graph(pkg))
    (pkg / "sub" / "leaf.py").write_text("")
    assert find_cycle(import_graph(pkg)) is None


# Everything `python -m steport.deploy serve` (the serving image's command) loads before it
# serves: the CLI, the HTTP and gRPC servers, batching, the protocol, metrics, the model
# repository and the ORT session factory.
SERVE_MODULES = ["steport.deploy.__main__", "steport.deploy.cli", "steport.deploy.server",
                 "steport.deploy.grpc_server", "steport.deploy.batcher",
                 "steport.deploy.protocol", "steport.deploy.metrics",
                 "steport.deploy.repository", "steport.runtime", "steport.ort_ops"]


@pytest.mark.parametrize("entry", ["steport.deploy.__main__", "all"])
def test_serving_path_does_not_import_torch(entry):
    """The runtime image has no torch (Dockerfile); an import of it anywhere on the serving
    path would break `steport serve` there. Checked in a fresh interpreter that has torch
    installed, so an accidental import would succeed and be seen."""
    mods = SERVE_MODULES if entry == "all" else [entry]
    code = ("import importlib, sys\n"
            f"for m in {mods!r}:\n"
            "    importlib.import_module(m)\n"
            "from steport.deploy.__main__ import main\n"
            "from steport.deploy.cli import add_commands\n"
            "import argparse\n"
            "ap = argparse.ArgumentParser()\n"
            "add_commands(ap.add_subparsers())\n"
            "ap.parse_args(['serve', 'm.onnx'])\n"
            "heavy = sorted(m for m in ('torch', 'onnxscript', 'steport.train', "
            "'steport.export') if m in sys.modules)\n"
            "print(heavy)\n"
            "sys.exit(1 if heavy else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"serving path imported {r.stdout.strip()} {r.stderr[-2000:]}"
    assert importlib.util.find_spec("torch") is not None  # the check could have seen it


def test_shared_errors_are_reexported_from_their_old_places():
    """User code catching the errors under their old names keeps working: same classes."""
    from steport import errors
    from steport.export import ExportError
    from steport.export.core import ExportError as CoreExportError
    from steport.train.alloc_guard import AllocationRefused
    from steport.train.checkpoint import CheckpointError

    assert ExportError is CoreExportError is errors.ExportError
    assert CheckpointError is errors.CheckpointError
    assert AllocationRefused is errors.AllocationRefused

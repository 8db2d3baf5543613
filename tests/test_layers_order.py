"""The import graph of the library: no cycle, and no import from a lower layer to a higher one.

The layers, lowest first, as the README's design notes draw them: the base modules; `nn` and
`data`; `train`; `analysis`; `report`; `audit` and `testing`; the command line and the parameter
schema (`config`), which the stages import and nothing in the library does. A module may
import its own layer and those below it, never one above. Imports under `if TYPE_CHECKING:` do
not run, so they are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_stage_deps import SRC, imported_modules

LAYERS = (
    ("equiseg.errors", "equiseg.io", "equiseg.runs", "equiseg.runtime", "equiseg.devices",
     "equiseg.metrics", "equiseg.geometry", "equiseg.image_files", "equiseg.presets"),
    ("equiseg.nn", "equiseg.data"),
    ("equiseg.train",),
    ("equiseg.analysis",),
    ("equiseg.report",),
    ("equiseg.audit", "equiseg.testing"),
    ("equiseg.cli", "equiseg.__main__", "equiseg.config", "equiseg"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    best, depth = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > depth:
                best, depth = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and the README"
    return best


def type_only_imports(path: Path) -> set[str]:
    """Modules `path` imports only inside `if TYPE_CHECKING:` blocks (never at run time)."""
    tree = ast.parse(path.read_text())
    guarded = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    typed = {n.module for n in imports if id(n) in guarded}
    return typed - {n.module for n in imports if id(n) not in guarded}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (SRC / "equiseg").rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        runtime = imported_modules(path) - type_only_imports(path)
        edges[name] = {m for m in runtime if m in modules and m != name
                       and not name.startswith(m + ".")}  # a package's __init__ runs first
    return edges


def test_no_import_runs_up_a_layer():
    upward = [f"{a} -> {b}" for a, targets in graph().items() for b in sorted(targets)
              if layer_of(b) > layer_of(a)]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    edges, state, cycles = graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_graph_holds_the_imports_it_judges():
    edges = graph()
    assert "equiseg.analysis.sweep" in edges["equiseg.audit.run"]
    assert "equiseg.metrics" in edges["equiseg.train.evaluation"]
    assert layer_of("equiseg.audit.run") > layer_of("equiseg.analysis.sweep") > layer_of("equiseg.nn")

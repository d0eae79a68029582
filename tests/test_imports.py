"""The engine's import graph: no module-level import cycle between engine modules, and every module
imports on its own in a fresh interpreter (so a move that left an old path behind fails here)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ENGINE.rglob("*.py"))}


def _runtime_imports(tree: ast.Module, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """Engine modules imported when ``name`` is executed: module-level statements (also inside
    ``try``/``if`` at module level), not function bodies and not ``if TYPE_CHECKING:`` blocks."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = engine_modules()
    names = set(modules)
    return {
        name: _runtime_imports(ast.parse(path.read_text()), name, path.name == "__init__.py", names)
        for name, path in modules.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_cycle_finder_sees_a_cycle_through_three_modules():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_module_level_imports_but_not_type_checking_or_function_bodies():
    source = (
        "from typing import TYPE_CHECKING\nfrom engine import x\nif TYPE_CHECKING:\n"
        "    from engine import y\ndef f():\n    from engine import z\n"
    )
    known = {"engine.x", "engine.y", "engine.z", "engine"}
    found = _runtime_imports(ast.parse(source), "engine.w", False, known)
    assert found == {"engine.x"}


def test_no_engine_module_imports_itself_back_at_run_time():
    graph = import_graph()
    assert "engine.executors.base" in graph  # the graph sees the packages
    # the package's own registration imports (importlib over its files) are not module-level
    # import statements, so a registry package importing its members is not a cycle here
    assert cycles(graph) == []


def test_every_engine_module_imports_in_a_fresh_interpreter():
    names = sorted(n for n in engine_modules() if not n.endswith("__main__"))  # __main__ runs the CLI
    code = (
        "import importlib, sys\nbad = []\nfor name in sys.argv[1:]:\n    try:\n"
        "        importlib.import_module(name)\n    except Exception as exc:\n"
        "        bad.append(f'{name}: {type(exc).__name__}: {exc}')\nprint('\\n'.join(bad))\n"
        "print('streamlit' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    *problems, streamlit_loaded = out.stdout.strip().split("\n")
    assert [p for p in problems if p] == []
    assert streamlit_loaded == "False"  # the engine never imports streamlit

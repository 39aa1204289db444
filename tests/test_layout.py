"""The package's shape: imports point one way, no cycles, every module imports, modules and functions stay small.

Layers, lowest first (a module may import its own layer or lower, never higher):
shared top-level helpers <- data <- models <- inference <- training/evaluation/scanning
<- adversarial/studies/explain/report/serve <- cli <- the public API (``fakescope/__init__``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "fakescope"
LAYERS = {
    "_version": 0, "registry": 0, "io": 0, "progress": 0,
    "data": 1, "models": 2, "inference": 3, "training": 4, "evaluation": 4, "scanning": 4,
    "adversarial": 5, "studies": 5, "explain": 5, "report": 5, "serve": 5, "cli": 6, "__init__": 7, "__main__": 7,
}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
LONG_OK = "# long:"  # a comment on a def line (or the line above) that says why a function is longer
# function length = its lines without the docstring


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(SRC.rglob("*.py")):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _is_pkg(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(name: str, path: Path, module_level_only: bool) -> set[str]:
    """fakescope modules that ``name`` imports (resolved; names that are modules count as modules)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    if module_level_only:  # what runs at import time: top-level statements, not TYPE_CHECKING blocks
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            nodes.extend(ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node])
    else:
        nodes = list(ast.walk(tree))
    base = name.split(".") if _is_pkg(path) else name.split(".")[:-1]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[: len(base) - (node.level - 1)] + ([node.module] if node.module else [])
            else:
                stem = node.module.split(".") if node.module else []
            mod = ".".join(stem)
            if not mod.startswith("fakescope"):
                continue
            for alias in node.names:
                found.add(f"{mod}.{alias.name}" if f"{mod}.{alias.name}" in MODULES else mod)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fakescope"))
    return {m for m in found if m in MODULES and m != name}


def _layer(name: str) -> int:
    parts = name.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def test_every_folder_and_top_module_has_a_layer() -> None:
    tops = {n.split(".")[1] for n in MODULES if "." in n}
    assert tops <= set(LAYERS), f"modules outside the layer table: {sorted(tops - set(LAYERS))}"


def test_imports_point_down() -> None:
    wrong = [f"{name} (layer {_layer(name)}) imports {dep} (layer {_layer(dep)})"
             for name, path in MODULES.items() for dep in _imports(name, path, module_level_only=False)
             if _layer(dep) > _layer(name)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_at_import_time() -> None:
    graph = {name: _imports(name, path, module_level_only=True) for name, path in MODULES.items()}
    # a module's package __init__ runs before it: that edge is implicit, not a cycle
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if n.startswith(d + "."):  # importing its own parent package
                continue
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


@pytest.mark.slow
def test_every_module_imports_first() -> None:
    """Each module imported as the FIRST fakescope module (the others purged from ``sys.modules`` in between), in
    a fresh interpreter: an import that only works after another module was loaded, or a cycle, fails here."""
    names = [n for n in MODULES if not n.endswith("__main__")]
    code = ("import importlib, sys\n"
            "for n in sys.argv[1:]:\n"
            "    for m in [m for m in sys.modules if m == 'fakescope' or m.startswith('fakescope.')]:\n"
            "        del sys.modules[m]\n"
            "    try:\n"
            "        importlib.import_module(n)\n"
            "    except Exception as e:\n"
            "        print(f'{n}: {type(e).__name__}: {e}')\n")
    r = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr[-2000:]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_and_function_size(name: str) -> None:
    path = MODULES[name]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{path.name}: {len(lines)} lines (at most {MAX_MODULE_LINES})"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            doc = node.body[0] if node.body and isinstance(node.body[0], ast.Expr) and isinstance(
                getattr(node.body[0], "value", None), ast.Constant) else None
            if doc is not None:  # the docstring does not count: the limit is on code
                n -= doc.end_lineno - doc.lineno + 1
            marked = any(LONG_OK in lines[i] for i in (node.lineno - 2, node.lineno - 1) if i >= 0)
            assert n <= MAX_FUNCTION_LINES or marked, (
                f"{name}.{node.name}: {n} lines (at most {MAX_FUNCTION_LINES}, or a '{LONG_OK} why' comment)")


def test_one_version_string() -> None:
    from fakescope import __version__
    from fakescope._version import __version__ as v

    assert __version__ == v
    hits = [p for p in MODULES.values() if "__version__ = " in p.read_text(encoding="utf-8")]
    assert [p.name for p in hits] == ["_version.py"]
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert 'version = { attr = "fakescope._version.__version__" }' in pyproject

"""The package's shape: the remote-code core stands alone, and no module grows past the size a reader can hold."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dual_denoising"
CORE = ["configuration_dual_denoising", "modeling_dual_denoising", "scheduling_dual_denoising", "pipeline_dual_denoising",
        "point_ops", "prompts", "fileio", "orientations", "shipped", "outputs"]
# what the core may import besides the standard library and itself: torch, numpy, transformers, and
# huggingface_hub, which transformers 5 configs are written with (`huggingface_hub.dataclasses.strict`)
CORE_THIRD_PARTY = {"torch", "numpy", "transformers", "huggingface_hub"}
# optional readers imported inside the function that needs them (the `mesh` extra), never at module level
CORE_LAZY_OPTIONAL = {"trimesh"}
# "no file over ~800 lines"; the largest is the modeling file (847): one model read top to bottom, now with its
# optional orientation head
MAX_LINES = 850
MAX_FUNCTION_LINES = 120
# the synthetic shape generators: one function per family of shapes, long by nature (each draws its parts in turn)
SHAPE_GENERATORS = {"synth/furniture.py", "synth/objects.py", "synth/vessels.py", "synth/primitives.py"}


def imported_modules(path: Path, module_level: bool = False) -> set[str]:
    """Top-level names of what `path` imports (only its module-level statements if asked), relative ones as "." + name."""
    names = set()
    tree = ast.parse(path.read_text())
    for node in (tree.body if module_level else ast.walk(tree)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or "").split(".")[0] if node.level else node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_imports_only_torch_numpy_transformers_and_each_other(module):
    allowed = CORE_THIRD_PARTY | set(sys.stdlib_module_names) | {"." + name for name in CORE} | {"."}
    path = PACKAGE / f"{module}.py"
    bad = imported_modules(path) - allowed - CORE_LAZY_OPTIONAL
    assert not bad, f"{module} imports {sorted(bad)}: the remote-code core may import only torch, numpy, transformers"
    eager_optional = imported_modules(path, module_level=True) & CORE_LAZY_OPTIONAL
    assert not eager_optional, f"{module} imports {sorted(eager_optional)} at module level: import it where it is used"


def test_subpackages_never_import_the_way_in():
    """data, synth, ... depend on the core, never on the CLI, its command handlers, the app or the inference front
    end (the handlers in `commands/` are the way in themselves)."""
    way_in = {"cli", "app", "inference", "commands"}
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE or path.parent.name == "commands":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 2 and (node.module or "").split(".")[0] in way_in:
                raise AssertionError(f"{path.relative_to(PACKAGE)} imports the front end module {node.module}")


def test_no_module_is_too_long_to_read():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these along their section banners: {long}"


def test_no_function_is_too_long_to_read():
    """Every function of the package (and of the drivers beside it) reads as steps: at most `MAX_FUNCTION_LINES`
    lines, the synthetic shape generators aside."""
    roots = [PACKAGE] + [PACKAGE.parents[1] / name for name in ("examples", "research", "scripts", "benchmarks")]
    long = {}
    for root in roots:
        for path in root.rglob("*.py"):
            if str(path.relative_to(PACKAGE)) in SHAPE_GENERATORS if path.is_relative_to(PACKAGE) else False:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                        long[f"{path.relative_to(PACKAGE.parents[1])}:{node.name}"] = n
    assert not long, f"split these into named steps: {long}"


def test_no_module_only_re_exports():
    """Every module of the package defines something of its own (a function, a class or an assignment that is not
    `__all__`); a module that only imports and re-exports is an alias to fold into its target."""
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" or "pretrained" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        own = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
               or isinstance(node, (ast.Assign, ast.AnnAssign)) and not any(
                   getattr(t, "id", None) == "__all__" for t in getattr(node, "targets", [getattr(node, "target", None)]))]
        assert own, f"{path.relative_to(PACKAGE)} only re-exports"


def module_graph() -> dict[str, set[str]]:
    """`{module: the package modules it imports}`, every import statement counted, those inside functions too;
    `from . import x` counts as importing `x` when `x` is a module, and a package stands for its `__init__`."""
    def name_of(path: Path) -> str:
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(p): p for p in PACKAGE.rglob("*.py") if "pretrained" not in p.parts}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                module = ".".join(filter(None, [base, node.module])) if node.level else node.module or ""
                for alias in node.names:
                    candidate = f"{module}.{alias.name}"
                    targets.add(candidate if candidate in modules else module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_no_two_modules_import_each_other():
    """No import circle, however long, counting imports inside functions too (a package's `__init__` that lazily
    exports its submodules is the way in to them, not a circle)."""
    graph = module_graph()
    lazy_inits = {name for name, path in graph.items() if (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()}
    edges = {m: {t for t in targets if not (t in lazy_inits and m.startswith(t + "."))} for m, targets in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                raise AssertionError("import circle: " + " -> ".join(trail[trail.index(target):] + [node, target]))
            if target not in state:
                visit(target, trail + [node])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])

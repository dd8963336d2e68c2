"""The package's shape: the remote-code core stands alone, and no module grows past the size a reader can hold."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dual_denoising"
CORE = ["configuration_dual_denoising", "modeling_dual_denoising", "scheduling_dual_denoising", "pipeline_dual_denoising",
        "point_ops", "prompts", "fileio"]
# what the core may import besides the standard library and itself: torch, numpy, transformers, and
# huggingface_hub, which transformers 5 configs are written with (`huggingface_hub.dataclasses.strict`)
CORE_THIRD_PARTY = {"torch", "numpy", "transformers", "huggingface_hub"}
# optional readers imported inside the function that needs them (the `mesh` extra), never at module level
CORE_LAZY_OPTIONAL = {"trimesh"}
# "no file over ~800 lines"; the largest is the modeling file (847): one model read top to bottom, now with its
# optional orientation head
MAX_LINES = 850


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
    """data, synth, ... depend on the core, never on the CLI, the app or the inference front end."""
    way_in = {"cli", "app", "inference"}
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level >= 2 and (node.module or "").split(".")[0] in way_in:
                raise AssertionError(f"{path.relative_to(PACKAGE)} imports the front end module {node.module}")


def test_no_module_is_too_long_to_read():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these along their section banners: {long}"


@pytest.mark.parametrize("old, new", [("dual_denoising.synthshapes", "dual_denoising.synth"),
                                      ("dual_denoising.render", "dual_denoising.synth.render"),
                                      ("dual_denoising.importers", "dual_denoising.data.importers"),
                                      ("dual_denoising.attacks", "dual_denoising.evaluation.attacks"),
                                      ("dual_denoising.recipes", "dual_denoising.training.recipes")])
def test_moved_modules_keep_their_old_import_paths(old, new):
    import importlib

    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    public = getattr(new_module, "__all__", None) or [n for n in vars(new_module) if not n.startswith("_")]
    missing = [name for name in public if not hasattr(old_module, name)]
    assert not missing, f"{old} no longer gives {missing}"

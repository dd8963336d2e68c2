"""Lazy package exports (PEP 562), as transformers' and diffusers' `__init__` files do: a name is imported from its
submodule the first time it is used, so that `import dual_denoising` (and the command line's `--help`) does not pay
for torch, transformers and datasets until something needs them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, list[str]]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """`__getattr__` and `__dir__` for `package`: `exports` maps each submodule (relative name) to the public names
    it gives; a submodule's own name is importable too (`package.submodule`)."""
    owner = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        if name in owner:
            value = getattr(importlib.import_module(f"{package}.{owner[name]}"), name)
        elif name in exports:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(importlib.import_module(package), name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*owner, *exports, *vars(importlib.import_module(package))})

    return __getattr__, __dir__

"""Where a command may write: never into one of its inputs. An output folder that is, holds or lies inside an input
(a dataset, a teacher, a model, the folder being imported) could replace or mix with what the user gave; every
command that writes checks this before any work (`check_not_an_input`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def overlaps(a: str | Path, b: str | Path) -> bool:
    """Whether two paths are the same, or one lies inside the other (after `~` and links are resolved)."""
    a, b = Path(a).expanduser().resolve(), Path(b).expanduser().resolve()
    return a == b or a in b.parents or b in a.parents


def check_not_an_input(output: str | Path, inputs: Mapping[str, str | Path | None], output_name: str) -> None:
    """Refuse an `output` that is, holds or lies inside one of `inputs` (`{name: path}`; a value that is no local
    path, such as a Hub id, or None, is skipped) with a one-line `ValueError` naming both."""
    for name, value in inputs.items():
        if value is not None and str(value) and Path(value).expanduser().exists() and overlaps(output, value):
            raise ValueError(f"{output_name} {output} is (or holds, or is inside) the {name} {value}; write into a "
                             "folder of its own, so no input is replaced")

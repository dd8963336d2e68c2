"""The command line: `--help` answers without the heavy libraries, and what the parsers state matches the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dual_denoising import cli

HEAVY = ("torch", "transformers", "datasets")
SUBCOMMANDS = [["classify"], ["embed"], ["classes"], ["models"], ["evaluate"], ["import"], ["import", "scanobjectnn"],
               ["import", "shapenet55-ulip"], ["make-synthetic"], ["precompute-features"], ["pretrain"], ["serve"]]


def imported_modules(stderr: str) -> set[str]:
    """Top-level module names from `python -X importtime` output."""
    return {m.group(1).split(".")[0] for m in re.finditer(r"^import time:.*\|\s+(\S+)\s*$", stderr, re.M)}


def run_help(script: Path, argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "importtime", str(script), *argv, "--help"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=script.parent)


def console_script() -> Path:
    script = Path(sys.executable).parent / "dual-denoising"
    if not script.is_file():
        pytest.skip("the dual-denoising console script is not installed next to this Python")
    return script


@pytest.mark.parametrize("argv", [[], *SUBCOMMANDS], ids=lambda a: " ".join(a) or "top")
def test_help_imports_neither_torch_nor_transformers(argv):
    done = run_help(console_script(), argv)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: dual-denoising" in done.stdout
    loaded = imported_modules(done.stderr)
    assert "dual_denoising" in loaded  # the parse of -X importtime's output found the package ...
    assert not loaded & set(HEAVY), f"--help imported {sorted(loaded & set(HEAVY))}"  # ... and nothing heavy


def test_import_registers_with_transformers_and_names_load_on_first_use():
    code = ("import sys, dual_denoising\n"
            "from transformers import AutoConfig\n"
            "from transformers.pipelines import PIPELINE_REGISTRY\n"
            "assert 'zero-shot-3d-classification' in PIPELINE_REGISTRY.get_supported_tasks()\n"
            "assert AutoConfig.for_model('dual_denoising').__class__.__name__ == 'DualDenoisingConfig'\n"
            "assert dual_denoising.DualDenoisingModel.__module__ == 'dual_denoising.modeling_dual_denoising'\n"
            "print('ok')")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_unknown_package_name_is_an_attribute_error():
    import dual_denoising

    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        dual_denoising.Nothing  # noqa: B018


def test_what_the_parsers_state_matches_the_code():
    """cli.py states these without importing the modules that own them (so that --help stays light)."""
    from dual_denoising.data.common import SCANOBJECTNN_VARIANTS
    from dual_denoising.data.triples import SAMPLE_METHODS
    from dual_denoising.evaluation.attacks import DEFENSES
    from dual_denoising.evaluation.zero_shot import DEFAULT_EPS_SWEEP
    from dual_denoising.pipeline_dual_denoising import UP_AXES
    from dual_denoising.synth.classes import DEFAULT_UNSEEN_CLASSES
    from dual_denoising.synth.scan import SCAN_VARIANTS
    from dual_denoising.synth.synthshapes import DEFAULT_SHAPES_PER_CLASS, DEFAULT_VIEWS

    assert cli.UP_AXES == UP_AXES
    assert cli.DEFENSES == tuple(DEFENSES)
    assert tuple(cli.float_list(cli.DEFAULT_EPS_SWEEP)) == tuple(DEFAULT_EPS_SWEEP)
    assert cli.SAMPLE_METHODS == SAMPLE_METHODS
    assert cli.SCANOBJECTNN_VARIANTS == tuple(SCANOBJECTNN_VARIANTS)
    assert (cli.SYNTHSHAPES_SHAPES_PER_CLASS, cli.SYNTHSHAPES_VIEWS) == (DEFAULT_SHAPES_PER_CLASS, DEFAULT_VIEWS)
    assert cli.SYNTHSHAPES_UNSEEN.split(",") == list(DEFAULT_UNSEEN_CLASSES)
    assert cli.SCAN_VARIANTS == tuple(SCAN_VARIANTS)


def test_every_command_names_a_function_that_exists():
    parser = cli.build_parser()
    targets = set()
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            nested = [a for a in sub._actions if isinstance(a, type(action))]
            for p in [sub, *(c for n in nested for c in n.choices.values())]:
                if p.get_default("func"):
                    targets.add(p.get_default("func"))
    assert len(targets) == 10, targets
    for target in targets:
        assert callable(cli.resolve_command(target)), target


def test_argument_types_say_what_was_wrong():
    import argparse

    assert cli.float_list("0, 0.01,none") == [0.0, 0.01]
    assert cli.view_angles("all") is None and cli.view_angles("0,90") == (0, 90)
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated numbers"):
        cli.float_list("a,b")
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated degrees"):
        cli.view_angles("north")


def test_listing_the_models_imports_neither_torch_nor_transformers():
    """`dual-denoising models` and `classes` read the package's folders only, so they answer at once."""
    import subprocess
    import sys

    code = ("import sys\nsys.argv = ['dual-denoising']  # as the console script runs it\n"
            "from dual_denoising import cli\nfor command in ('models', 'classes'):\n"
            "    assert cli.main([command]) == 0\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]" and "dual-denoising-tiny" in run.stdout

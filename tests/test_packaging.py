"""The package as a library: a wheel built from the tree carries the presets, the shipped models and the metrics, and
works from another directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_presets_models_and_metrics(tmp_path):
    # build from a copy of what a source distribution holds, so the build leaves nothing in the working tree
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(tmp_path),
         str(tree)], capture_output=True, text=True, timeout=600,
    )
    assert build.returncode == 0, build.stderr
    wheel = next(tmp_path.glob("dual_denoising-*.whl"))
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stderr
    script = textwrap.dedent(f"""
        import dual_denoising
        from pathlib import Path
        assert Path(dual_denoising.__file__).is_relative_to({str(target)!r}), dual_denoising.__file__
        from dual_denoising.training import resolve_preset
        from dual_denoising.configuration_dual_denoising import DualDenoisingConfig
        for name in ("tiny", "small", "base-8k"):
            DualDenoisingConfig.from_pretrained(resolve_preset(name))
        from transformers import pipeline
        classifier = pipeline("zero-shot-3d-classification")
        import numpy as np
        ranking = classifier(np.random.default_rng(0).normal(size=(500, 3)), candidate_labels=["chair", "lamp"])
        assert len(ranking) == 2
        from dual_denoising.evaluation import load_metric
        load_metric("zero_shot_accuracy")
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr
    # the wheel's console script: `--help` answers without importing torch or transformers
    from .test_cli import HEAVY, imported_modules, run_help

    for argv in ([], ["classify"], ["pretrain"]):
        done = run_help(target / "bin" / "dual-denoising", argv, env=env)
        assert done.returncode == 0 and "usage: dual-denoising" in done.stdout, done.stderr[-2000:]
        assert not imported_modules(done.stderr) & set(HEAVY), argv

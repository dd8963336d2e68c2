"""The research drivers the docs' tables come from: the schedule check (research/check_feature_schedule.py)
on the shipped text tower, and the robustness table's resumable runs (research/robustness_budgets.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from datasets import Dataset, DatasetDict

from dual_denoising.data import save_triples, triples_features

from .conftest import CLASSES, load_repo_file, make_shapes

ROOT = Path(__file__).resolve().parents[1]


def _share(*overrides: str) -> float:
    command = [sys.executable, str(ROOT / "research" / "check_feature_schedule.py"), "--config", str(ROOT / "hub_configs"
               / "tiny"), "--draws", "4", "--samples", "20000", *overrides]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    return float(re.search(r"< 50% classifiable: ([\d.]+)%", run.stdout).group(1))


def test_schedule_check_tells_a_readable_schedule_from_one_that_needs_the_points():
    # the paper's schedule with uniform tau: z_tau alone gives the class away almost always (~7% need the points)
    uniform = _share("--overrides", '{"feature_timestep_max_prob": 0.0, "feature_log_snr_shift": 0.0}')
    assert 3 < uniform < 12
    # half of tau at T-1 (the shipped setting), or a shift of -log D, make most of them need the points
    assert _share("--overrides", '{"feature_timestep_max_prob": 0.5, "feature_log_snr_shift": 0.0}') > 45
    assert _share("--overrides", '{"feature_timestep_max_prob": 0.0, "feature_log_snr_shift": -6.24}') > 60


def _test_split(work: Path) -> None:
    """A tiny `synthshapes-1024` test split in `work` (the layout robustness_budgets.py reads)."""
    points, labels = make_shapes(2, seed=3, num_points=1024)
    features = triples_features(list(CLASSES), with_images=False, with_captions=False)
    test = Dataset.from_dict({"shape_id": [f"s{i}" for i in range(len(points))], "points": points.numpy(),
                              "label": labels.tolist()}, features=features)
    save_triples(DatasetDict({"test": test}), work / "synthshapes-1024")


def _budgets(work: Path, out: Path, *eps: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    shipped = ROOT / "src" / "dual_denoising" / "pretrained" / "ulip-tiny"
    command = [sys.executable, str(ROOT / "research" / "robustness_budgets.py"), "--work-dir", str(work), "--out",
               str(out), "--model", f"plain={shipped}", "--robust-samples", "3", "--steps", "1", "--eps", *eps,
               "--transfer-from", str(shipped), *extra]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    return run


def test_robustness_budgets_resumes_cell_by_cell_and_scores_transfer(tmp_path):
    _test_split(tmp_path)
    out = tmp_path / "table.json"
    _budgets(tmp_path, out, "0.01")
    first = json.loads(out.read_text())["plain"]
    assert set(first["pgd_linf_0.01"]) == {"transfer", "adaptive", "fixed", "robust"}
    # attacked on itself, a deterministic model's transfer cell is its adaptive one
    assert first["pgd_linf_0.01"]["transfer"] == first["pgd_linf_0.01"]["adaptive"]
    first["pgd_linf_0.01"]["adaptive"]["marker"] = "kept"  # a finished cell must be reused, not recomputed
    out.write_text(json.dumps({"plain": first}))
    run = _budgets(tmp_path, out, "0.01", "0.02")
    assert "(resuming)" in run.stdout
    second = json.loads(out.read_text())["plain"]
    assert second["pgd_linf_0.01"]["adaptive"]["marker"] == "kept" and "pgd_linf_0.02" in second
    assert second["clean"] == first["clean"]
    # a later command adds the long (and a missing transfer) attack to a finished cell, keeping the attacks there
    del second["pgd_linf_0.01"]["transfer"]
    out.write_text(json.dumps({"plain": second}))
    run = _budgets(tmp_path, out, "0.01", extra=("--long-eps", "0.01", "--long-steps", "2"))
    third = json.loads(out.read_text())["plain"]
    assert third["pgd_linf_0.01"]["adaptive"]["marker"] == "kept"
    assert {"long", "transfer"} <= set(third["pgd_linf_0.01"])
    assert third["pgd_linf_0.02"] == second["pgd_linf_0.02"]


def test_robustness_budgets_resumes_a_stopped_attack_batch_by_batch_and_adds_a_skipped_fixed_attack(tmp_path):
    _test_split(tmp_path)
    out = tmp_path / "table.json"
    one_per_batch = ("--batch-size", "1")
    _budgets(tmp_path, out, "0.05", extra=one_per_batch)
    full = json.loads(out.read_text())["plain"]
    right = full["pgd_linf_0.05"]["adaptive"]["right"]
    assert len(right) == 3 and "partial" not in full["pgd_linf_0.05"]
    # a run stopped after its first batch: that batch is kept (flipped here, so reuse shows), the rest recomputed
    planted = "1" if right[0] == "0" else "0"
    full["pgd_linf_0.05"] = {"partial": {"adaptive": {"batch_size": 1, "right": [planted]}}}
    out.write_text(json.dumps({"plain": full}))
    _budgets(tmp_path, out, "0.05", extra=one_per_batch)
    resumed = json.loads(out.read_text())["plain"]["pgd_linf_0.05"]
    assert resumed["adaptive"]["right"] == planted + right[1:] and "partial" not in resumed
    # a stochastic row (smoothing makes the baseline one) first run with --skip-fixed gets its fixed attack later
    smoothing = ("--inference-point-noise-level", "250", "--num-noise-samples", "1")
    out = tmp_path / "smoothed.json"
    _budgets(tmp_path, out, "0.05", extra=(*smoothing, "--skip-fixed"))
    first = json.loads(out.read_text())["plain"]["pgd_linf_0.05"]
    assert "fixed" not in first and first["robust"] == first["adaptive"]
    _budgets(tmp_path, out, "0.05", extra=smoothing)
    second = json.loads(out.read_text())["plain"]["pgd_linf_0.05"]
    assert second["adaptive"] == first["adaptive"] and "fixed" in second
    assert second["robust"]["accuracy"] == min(second["adaptive"]["accuracy"], second["fixed"]["accuracy"])


def test_the_stop_gradient_arms_differ_in_gamma():
    """robustness_synthshapes.py's two arms train the preset with gamma 0 ("on") and 1 ("off"), nothing else."""
    from dual_denoising import DualDenoisingConfig
    from dual_denoising.training import update_config

    module = load_repo_file("research/robustness_synthshapes.py")
    preset = DualDenoisingConfig.from_pretrained(ROOT / "hub_configs" / "tiny")
    arms = {name: update_config(preset, overrides).to_dict() for name, overrides in module.STOP_GRADIENT_ARMS.items()}
    assert arms["on"]["denoiser_context_grad_scale"] == 0.0 and arms["off"]["denoiser_context_grad_scale"] == 1.0
    assert {k for k in arms["on"] if arms["on"][k] != arms["off"][k]} == {"denoiser_context_grad_scale"}


def test_open_set_runs_are_pretrain_commands_on_the_seen_classes():
    """Every open-set row is a `dual-denoising pretrain` command a user can repeat: the recipe, the seen filter, the
    target and the split; split 2's classes were seen in split 1."""
    sys.path.insert(0, str(ROOT / "research"))
    import open_set

    from dual_denoising.training import arguments

    assert open_set.parse_run("dd-head-image-2400-split2") == {"model": "dd-head", "target": "image", "steps": 2400,
                                                                "split": 2}
    command = open_set.pretrain_command(Path("w"), "dd-head-text-split2")
    assert command[1:4] == ["-m", "dual_denoising.cli", "pretrain"]
    args = arguments.parse_args(command[4:])
    assert args.train_on_seen_classes and args.max_train_steps == 800 and args.unseen_classes == open_set.SPLIT_2
    assert json.loads(args.config_overrides) == {"feature_target": "text", "contrastive_head_weight": 1.0}
    assert args.objective == "dual_denoising" and args.validation_per_class == 16
    from dual_denoising.synth.classes import DEFAULT_UNSEEN_CLASSES

    assert not set(open_set.SPLIT_2.split(",")) & set(DEFAULT_UNSEEN_CLASSES)
    assert open_set.readout_options("fusion:0.25") == {"readout": "fusion", "fusion_weight": 0.25}
    assert open_set.readout_options("start:250") == {"readout": "denoiser", "start_timestep": 250}

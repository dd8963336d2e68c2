"""The schedule check of issue 13 (examples/check_feature_schedule.py) on the shipped text tower."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _share(*overrides: str) -> float:
    command = [sys.executable, str(ROOT / "examples" / "check_feature_schedule.py"), "--config", str(ROOT / "hub_configs"
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

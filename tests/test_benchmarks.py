"""The benchmark scripts that have no GPU here still run: the GPU check's CPU smoke mode, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_in_its_cpu_smoke_mode(tmp_path):
    out = tmp_path / "report.md"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = out.read_text()
    for section in ("## 1. The gpu tests", "## 2. Inference speed", "## 3. Training speed and memory",
                    "## 4. Loss curves, device and CPU"):
        assert section in report, section
    assert "passed" in report and "FAILED" not in report and "| 10 |" in report  # the tests ran; 10 updates logged

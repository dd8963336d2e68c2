"""The documentation holds: every section the code names exists, and the product speaks of itself, not its making."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = ["src", "examples", "research", "scripts", "benchmarks"]


def code_files() -> list[Path]:
    return [p for folder in CODE for p in (ROOT / folder).rglob("*.py") if "pretrained" not in p.parts]


def headings(path: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in path.read_text().splitlines() if line.startswith("#")]


def test_every_docs_section_named_in_the_code_exists():
    references = 0
    for path in code_files():
        text = " ".join(path.read_text().split())  # references may wrap over lines
        for page, number in re.findall(r"(docs/\w+\.md),? section (\d+)", text):
            references += 1
            assert any(h.startswith(f"{number}.") for h in headings(ROOT / page)), (path, page, number)
        for page, quoted in re.findall(r"(docs/\w+\.md),? \"([^\"]+)\"", text):
            references += 1
            assert quoted.lower() in " ".join((ROOT / page).read_text().split()).lower(), (path, page, quoted)
        for quoted in re.findall(r"the README's \"([^\"]+)\"", text):
            references += 1
            assert quoted in headings(ROOT / "README.md"), (path, quoted)
        for page in re.findall(r"\b((?:docs|benchmarks|research)/[\w-]+\.md)\b", text):
            assert (ROOT / page).is_file(), (path, page)
    assert references > 10  # the patterns above do find the code's references


def test_the_product_does_not_speak_of_its_making():
    found = subprocess.run(["git", "grep", "-n", "-I", "-i", "-E", r"\bissue [0-9]|\bsession\b|\bv1\b", "--", "README.md",
                            "docs", "src", "examples", "benchmarks"], cwd=ROOT, capture_output=True, text=True).stdout
    assert found == "", found


def test_readme_is_a_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 320


def runnable_blocks(page: Path) -> list[tuple[str, str]]:
    """The fenced blocks of a page marked `<!-- runnable -->` on the line before: (language, code), in order."""
    return re.findall(r"<!-- runnable -->\n```(python|bash)\n(.*?)```", page.read_text(), flags=re.S)


def test_the_readme_runnable_blocks_run_as_written(tmp_path):
    import os
    import sys

    blocks = runnable_blocks(ROOT / "README.md")
    assert [language for language, _ in blocks] == ["python", "bash"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for language, code in blocks:  # in one folder, in order: a later block may read what an earlier one wrote
        command = [sys.executable, "-c", code] if language == "python" else ["bash", "-euo", "pipefail", "-c", code]
        run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, (code, run.stderr[-2000:])
        if language == "python":
            assert "'label': 'chair'" in run.stdout.splitlines()[-1].split("}")[0]  # the sample chair is a chair
        else:
            assert "dual-denoising-tiny" in run.stdout and "chair" in run.stdout

"""Checkpoints of a run: `accelerator.save_state` folders, the newest kept, resumable by step."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

from accelerate import Accelerator

from .arguments import CHECKPOINT_PATTERN


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class TrainerState:
    """Where the run is, saved in every checkpoint (`accelerator.register_for_checkpointing`)."""

    global_step: int = 0  # optimizer updates done
    epoch: int = 0  # passes over the data begun
    batches_in_epoch: int = 0  # batches of the current pass every process has consumed

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, int(value))


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """The complete `checkpoint-{step}` folders of a run, oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(resume_from_checkpoint: str, output_dir: str | Path) -> Path | None:
    """`latest` -> the newest checkpoint of `output_dir` (None when there is none); a path -> that folder."""
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume_from_checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {path}: no such checkpoint folder")
    return path


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, total_limit: int | None) -> Path:
    """`save_state` on every process (FSDP/DeepSpeed need it) into a staging folder that the main process renames to
    `checkpoint-{step}` once every process is done, so `latest` never picks a half-written checkpoint; then the
    oldest checkpoints beyond `total_limit` are removed (main process only). The output folder must be one that every
    process sees (a shared filesystem across machines)."""
    final, staging = output_dir / f"checkpoint-{step}", output_dir / f"checkpoint-{step}.partial"
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        for stale in output_dir.glob("checkpoint-*.partial"):  # left by a run killed while saving
            shutil.rmtree(stale)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final

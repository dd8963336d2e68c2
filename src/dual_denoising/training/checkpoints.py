"""The run folder: what `pretrain` may write there (a manifest of what it wrote), and its checkpoints
(`accelerator.save_state` folders, the newest kept, resumable by step)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from accelerate import Accelerator

from ..outputs import check_not_an_input
from .arguments import CHECKPOINT_PATTERN

# ----------------------------------------------------------------------------------------------------------------------
# The run folder: nothing of the user's is replaced or deleted unasked
# ----------------------------------------------------------------------------------------------------------------------
MANIFEST_FILE = ".dual_denoising_pretrain.json"  # the top-level entries a `pretrain` run wrote into its folder


def written_entries(output_dir: str | Path) -> set[str]:
    """The names of the entries of `output_dir` that pretrain runs wrote (its manifest), the manifest included."""
    manifest = Path(output_dir) / MANIFEST_FILE
    if not manifest.is_file():
        return set()
    return set(json.loads(manifest.read_text())["written"]) | {MANIFEST_FILE}


def record_written(output_dir: str | Path, *names: str) -> None:
    """Add top-level entry names to the folder's manifest (main process only)."""
    manifest = Path(output_dir) / MANIFEST_FILE
    written = written_entries(output_dir) - {MANIFEST_FILE} | set(names)
    manifest.write_text(json.dumps({"written": sorted(written)}, indent=2) + "\n")


def check_output_dir(output_dir: str | Path, inputs: dict[str, str | None], resuming: bool, overwrite: bool,
                     checkpointing: bool = False) -> None:
    """Before any work: the output folder is new, empty or holds only what earlier runs wrote (its manifest);
    anything else needs `--overwrite_output_dir`, and even then nothing the runs did not write is ever deleted. A
    folder holding an earlier run's checkpoints is resumed (`--resume_from_checkpoint latest`) or, with
    `--overwrite_output_dir`, started afresh (those checkpoints, written by a run, are removed then). No output may
    be an input (the dataset, the teacher, the starting model, a config, a scan dataset)."""
    folder = Path(output_dir).resolve()
    check_not_an_input(output_dir, {f"--{option}": value for option, value in inputs.items()}, "--output_dir")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ValueError(f"--output_dir {output_dir} is a file; name a folder")
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in written_entries(folder))
    if foreign and not overwrite:
        raise FileExistsError(f"--output_dir {output_dir} holds files this trainer did not write ({', '.join(foreign[:3])}"
                              f"{', ...' if len(foreign) > 3 else ''}); name a new folder, or pass --overwrite_output_dir "
                              "(files the trainer did not write are never deleted)")
    theirs = [name for name in foreign if CHECKPOINT_PATTERN.match(name.removesuffix(".partial"))]
    if theirs and checkpointing:  # one of the same name would be written over: a folder is never deleted unasked
        raise FileExistsError(f"--output_dir {output_dir} holds {theirs[0]}, which this trainer did not write and "
                              "might write over; move it away or name a new folder")
    earlier = [p.name for p in list_checkpoints(folder)]
    if earlier and not resuming and not overwrite:
        raise FileExistsError(f"--output_dir {output_dir} holds an earlier run's {earlier[-1]}: continue it with "
                              "--resume_from_checkpoint latest, or start afresh with --overwrite_output_dir")


def clear_earlier_checkpoints(output_dir: str | Path) -> None:
    """A fresh run into a folder of an earlier run (`--overwrite_output_dir`): that run's checkpoints go (they were
    written by a run, per the manifest), so that `latest` and the checkpoint limit see this run's only."""
    for checkpoint in list_checkpoints(output_dir):
        if checkpoint.name in written_entries(output_dir):
            shutil.rmtree(checkpoint)


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
    """The complete `checkpoint-{step}` folders of a run folder that a run wrote (its manifest), oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    ours = written_entries(folder)
    found = [(int(m.group(1)), p) for p in folder.iterdir()
             if p.is_dir() and p.name in ours and (m := CHECKPOINT_PATTERN.match(p.name))]
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
    if accelerator.is_main_process:
        record_written(output_dir, staging.name)  # a run killed while saving leaves it: it is the run's, not foreign
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # only ever one of this run's (check_output_dir refused a folder with others)
            shutil.rmtree(final)
        staging.rename(final)
        record_written(output_dir, final.name)
        for stale in output_dir.glob("checkpoint-*.partial"):  # left by a run killed while saving
            if stale.name in written_entries(output_dir):
                shutil.rmtree(stale)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final

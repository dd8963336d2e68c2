"""Pretraining with Accelerate: exact resumption after SIGKILL, a real two-process run, the self-contained
final folder, teacher features computed on the fly, the Hub upload (mocked), both objectives."""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from safetensors.torch import load_file
from transformers import CLIPProcessor, get_scheduler, pipeline

from dual_denoising import (
    DualDenoisingModel,  # also registers the zero-shot-3d-classification task
    cli,
)
from dual_denoising import training as T
from dual_denoising.data import load_triples, save_triples, triples_features
from dual_denoising.synth import build_synthshapes
from dual_denoising.teacher import build_image_processor
from dual_denoising.training import card as model_card_module

from .conftest import tester, tiny_clip, tiny_teacher

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "pretrain.py"
CLASSES = ["chair", "table", "lamp", "cup"]
SEEN, UNSEEN = CLASSES[:3], CLASSES[3:]
EMBED_DIM = tester.embed_dim  # D of the tiny teacher
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(REPO / "src")}


def with_teacher_embeddings(split: Dataset, seed: int) -> Dataset:
    """Add `image_embeds` (one per view) and `text_embeds` (one per caption): a fixed random vector per class plus a
    little noise, so that no teacher is needed to train."""
    class_vectors = np.random.default_rng(123).normal(size=(len(CLASSES), EMBED_DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)

    def embed(row: dict) -> dict:
        def draw(count: int) -> np.ndarray:
            return class_vectors[row["label"]] + 0.1 * rng.normal(size=(count, EMBED_DIM)).astype(np.float32)

        return {"image_embeds": draw(len(row["images"])), "text_embeds": draw(len(row["captions"]))}

    features = split.features.copy()
    features.update(triples_features(with_images=False, with_captions=False, embed_dim=EMBED_DIM))
    return split.map(embed, features=features)


def write_triples(root: Path, embeds: bool = True) -> Path:
    """A small SynthShapes set: 4 classes (cup unseen) x 5 shapes (4 train, 1 test), 256 points, 2 views, 2 captions."""
    dataset, metadata = build_synthshapes(5, views=2, seed=0, num_points=256, image_size=16, classes=CLASSES,
                                          unseen_classes=UNSEEN, progress=False, captions_per_shape=2)
    if embeds:
        dataset = DatasetDict({name: with_teacher_embeddings(split, seed) for seed, (name, split) in
                               enumerate(dataset.items())})
    return save_triples(dataset, root, metadata=metadata)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    """A SynthShapes folder with precomputed embeddings, a tiny teacher (CLIP + tokenizer + image processor whose ids
    agree with the text config) and a tiny model config."""
    root = tmp_path_factory.mktemp("pretrain")
    model, tokenizer = tiny_teacher(CLASSES + ["sofa", "bed"], projection_dim=EMBED_DIM)
    teacher = root / "teacher"
    model.save_pretrained(teacher)
    image_processor = build_image_processor(16, [0.5] * 3, [0.25] * 3)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(teacher)
    config = root / "config"
    tester.get_config().save_pretrained(config)
    return {"root": root, "data": write_triples(root / "data"), "teacher": teacher, "config": config}


def pretrain_argv(ws: dict[str, Path], output_dir: Path, *extra: str) -> list[str]:
    return [
        "--dataset", str(ws["data"]), "--teacher", str(ws["teacher"]), "--config", str(ws["config"]),
        "--output_dir", str(output_dir), "--per_device_train_batch_size", "2", "--per_device_eval_batch_size", "8",
        "--learning_rate", "1e-3", "--logging_steps", "1", "--eval_num_noise_samples", "2", "--report_to", "none",
        *extra,
    ]


def run_script(argv: list[str], launcher: list[str] | None = None, timeout: int = 240) -> subprocess.CompletedProcess:
    command = (launcher or [sys.executable]) + [str(SCRIPT), *argv]
    return subprocess.run(command, env=ENV, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def read_log(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "trainer_log.jsonl").read_text().splitlines()]


def expected_learning_rates(lr: float, scheduler: str, warmup: int, total: int) -> list[float]:
    """The rate each of `total` updates must use, from a scheduler stepped once per update."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    schedule = get_scheduler(scheduler, optimizer=optimizer, num_warmup_steps=warmup, num_training_steps=total)
    rates = []
    for _ in range(total):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    return rates


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """`pretrain` run in this process builds an Accelerator; each test starts from a clean accelerate state."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


# ---------------------------------------------------------------------------------------------------------------------
# Resumption after SIGKILL
# ---------------------------------------------------------------------------------------------------------------------
# 16 rows, batches of 2, 2 batches per update: 4 updates per epoch. 6 updates cross an epoch boundary; the kill comes
# after checkpoint-3, mid-epoch (6 of 8 batches consumed), so the resumed run must skip batches and then begin epoch 1.
RESUME_ARGS = ("--gradient_accumulation_steps", "2", "--max_train_steps", "6", "--checkpointing_steps", "3",
               "--checkpoints_total_limit", "1", "--lr_scheduler_type", "cosine", "--num_warmup_steps", "2",
               "--seed", "7")


@pytest.fixture(scope="module")
def reference_run(workspace) -> Path:
    """An uninterrupted run; its final folder is also the one the loading tests read."""
    output_dir = workspace["root"] / "reference"
    result = run_script(pretrain_argv(workspace, output_dir, *RESUME_ARGS))
    assert result.returncode == 0, result.stderr[-4000:]
    return output_dir


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(workspace, reference_run):
    output_dir = workspace["root"] / "interrupted"
    killed = run_script(pretrain_argv(workspace, output_dir, *RESUME_ARGS, "--debug_kill_after_checkpoint", "3"))
    assert killed.returncode == -9, killed.stderr[-4000:]  # SIGKILL, right after checkpoint-3 was written
    assert [p.name for p in T.list_checkpoints(output_dir)] == ["checkpoint-3"]
    assert not (output_dir / "model.safetensors").exists()

    resumed = run_script(pretrain_argv(workspace, output_dir, *RESUME_ARGS, "--resume_from_checkpoint", "latest"))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resumed from" in resumed.stderr and "step 3" in resumed.stderr

    reference, final = load_file(reference_run / "model.safetensors"), load_file(output_dir / "model.safetensors")
    assert reference.keys() == final.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(final[name], tensor, rtol=1e-5, atol=1e-6, msg=f"{name} differs after resuming")
    # the resumed run logged the same losses for the steps it ran
    ref_losses = {r["step"]: r["loss"] for r in read_log(reference_run) if "loss" in r}
    res_losses = {r["step"]: r["loss"] for r in read_log(output_dir) if "loss" in r}
    for step in (4, 5, 6):
        assert res_losses[step] == pytest.approx(ref_losses[step], rel=1e-5)
    # rotation (--checkpoints_total_limit 1): only the newest checkpoint is kept
    assert [p.name for p in T.list_checkpoints(output_dir)] == ["checkpoint-6"]
    assert json.loads((output_dir / T.TRAIN_RESULTS_FILE).read_text())["global_step"] == 6


# ---------------------------------------------------------------------------------------------------------------------
# The final folder
# ---------------------------------------------------------------------------------------------------------------------
def test_final_folder_is_self_contained(reference_run):
    model = DualDenoisingModel.from_pretrained(reference_run)
    assert model.text_model is not None and not any(p.requires_grad for p in model.text_model.parameters())
    for name in ("config.json", "model.safetensors", "tokenizer_config.json", "README.md",
                 "pipeline_dual_denoising.py", "modeling_dual_denoising.py"):
        assert (reference_run / name).is_file(), name
    config = json.loads((reference_run / "config.json").read_text())
    assert "zero-shot-3d-classification" in config["custom_pipelines"]

    classifier = pipeline("zero-shot-3d-classification", model=str(reference_run))
    cloud = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    result = classifier(cloud, candidate_labels=CLASSES, num_noise_samples=2)
    assert sorted(r["label"] for r in result) == sorted(CLASSES)
    assert sum(r["score"] for r in result) == pytest.approx(1.0, abs=1e-5)

    card = (reference_run / "README.md").read_text()
    front_matter = card.split("---")[1]
    for key in ("library_name: transformers", "tags:", "dual-denoising", "zero-shot-3d-classification"):
        assert key in front_matter, key
    # the Hub has no 3D classification pipeline tag; a text task's tag would mislabel the model
    assert "pipeline_tag" not in front_matter
    results = json.loads((reference_run / T.TRAIN_RESULTS_FILE).read_text())
    assert 0.0 <= results["eval"]["accuracy"] <= 1.0 and results["eval"]["num_samples"] == 4
    # trained on every class: the dataset's unseen classes were seen, so no open-set figures
    assert "unseen_accuracy" not in results["eval"] and "seen_accuracy" not in results["eval"]
    assert "teacher text tower" in results["eval"]["class_embeds_source"]
    assert f"{100 * results['eval']['accuracy']:.1f}%" in card


def test_the_model_card_snippet_runs_against_the_saved_folder(reference_run, tmp_path):
    import re

    import trimesh

    snippet = re.search(r"```python\n(.*?)```", (reference_run / "README.md").read_text(), flags=re.S).group(1)
    trimesh.creation.box().export(tmp_path / "chair.ply")  # the snippet classifies chair.ply
    code = snippet.replace("path/to/this/folder", str(reference_run)) + "\nprint(classifier('chair.ply', candidate_labels=['chair', 'table']))"
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "'label': 'chair'" in run.stdout or "'label': 'table'" in run.stdout


# ---------------------------------------------------------------------------------------------------------------------
# Two real processes (torchrun, gloo on CPU)
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_share_the_work_and_the_schedule(workspace):
    output_dir = workspace["root"] / "ddp"
    # 16 rows, 2 processes x batches of 2 x 2 accumulated = 8 rows per update: 2 updates per epoch, 5 updates
    args = pretrain_argv(workspace, output_dir, "--gradient_accumulation_steps", "2", "--max_train_steps", "5",
                         "--lr_scheduler_type", "linear", "--num_warmup_steps", "2", "--debug_log_samples",
                         "--eval_split", "none")
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    result = run_script(args, launcher=launcher, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]

    results = json.loads((output_dir / T.TRAIN_RESULTS_FILE).read_text())
    assert results["num_processes"] == 2 and results["global_step"] == 5 and results["total_batch_size"] == 8
    rates = [r["learning_rate"] for r in read_log(output_dir) if "learning_rate" in r]
    expected = expected_learning_rates(1e-3, "linear", 2, 5)
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    assert results["learning_rate"] == pytest.approx(expected[-1])  # the rate of the last update: 1e-3 / 3

    seen = {}
    for rank in (0, 1):
        records = [json.loads(line) for line in (output_dir / "debug" / f"samples_rank{rank}.jsonl").open()]
        assert len(records) == 5 * 2  # 2 batches per update on each process
        seen[rank] = {}
        for record in records:
            seen[rank].setdefault(record["epoch"], []).extend(record["shape_ids"])
    for epoch in (0, 1):  # complete epochs: the processes split the 16 rows between them
        assert not set(seen[0][epoch]) & set(seen[1][epoch])
        assert len(set(seen[0][epoch]) | set(seen[1][epoch])) == 16
    assert seen[0][0] != seen[0][1]  # a new order every epoch


# ---------------------------------------------------------------------------------------------------------------------
# In-process runs: features computed from the teacher, the Hub upload, the baseline in bf16
# ---------------------------------------------------------------------------------------------------------------------
def test_missing_features_are_computed_from_the_teacher(workspace, tmp_path):
    data = write_triples(tmp_path / "raw", embeds=False)
    args = T.parse_args(pretrain_argv({**workspace, "data": data}, tmp_path / "out", "--max_train_steps", "1",
                                      "--eval_split", "none"))
    results = T.pretrain(args)
    assert results["global_step"] == 1
    cost = results["data"]["teacher_features_cost"]  # what computing them cost is recorded (and logged)
    assert cost["rows"] == 20 and not cost["reused"] and cost["seconds"] > 0
    assert "were computed for this run" in (tmp_path / "out" / "README.md").read_text()
    train = load_triples(data, split="train")
    assert {"image_embeds", "text_embeds"} <= set(train.column_names)
    assert np.asarray(train[0]["image_embeds"]).shape == (2, EMBED_DIM)


def test_push_to_hub_uploads_the_final_folder_only(workspace, tmp_path, monkeypatch):
    from huggingface_hub.utils import filter_repo_objects

    calls = {}
    monkeypatch.setattr(model_card_module, "create_repo", lambda repo_id, **kw: calls.setdefault("create", (repo_id, kw)))
    monkeypatch.setattr(model_card_module, "upload_folder", lambda **kw: calls.setdefault("upload", kw))
    output_dir = tmp_path / "out"
    args = T.parse_args(pretrain_argv(workspace, output_dir, "--max_train_steps", "2", "--checkpointing_steps", "1",
                                      "--push_to_hub", "--hub_model_id", "someone/dd-tiny", "--eval_split", "none"))
    T.pretrain(args)
    assert calls["create"][0] == "someone/dd-tiny"
    upload = calls["upload"]
    assert upload["repo_id"] == "someone/dd-tiny" and Path(upload["folder_path"]) == output_dir
    files = [p.relative_to(output_dir).as_posix() for p in output_dir.rglob("*") if p.is_file()]
    uploaded = set(filter_repo_objects(files, ignore_patterns=upload["ignore_patterns"]))
    assert {"model.safetensors", "config.json", "README.md", "tokenizer_config.json",
            "pipeline_dual_denoising.py"} <= uploaded
    assert any(f.startswith("checkpoint-2/") for f in files)
    assert not any(f.startswith("checkpoint-") for f in uploaded)


def test_contrastive_baseline_in_bf16_without_teacher(workspace, tmp_path):
    """The ULIP objective through the same script, bf16 autocast, no teacher (D from the data), trained on the seen
    classes only; evaluated against class prototypes from the training captions."""
    output_dir = tmp_path / "out"
    argv = pretrain_argv(workspace, output_dir, "--objective", "contrastive", "--mixed_precision", "bf16",
                         "--max_train_steps", "3", "--eval_steps", "2", "--train_on_seen_classes")
    argv = argv[:2] + argv[4:]  # no --teacher
    results = T.pretrain(T.parse_args(argv))
    assert results["objective"] == "contrastive" and results["mixed_precision"] == "bf16"
    log = read_log(output_dir)
    assert [r["step"] for r in log if "eval_accuracy" in r] == [2, 3]
    assert all(np.isfinite(r["contrastive_loss"]) for r in log if "contrastive_loss" in r)
    assert results["data"]["num_train_rows"] == 12  # 4 rows of each of the 3 seen classes
    assert "unseen_accuracy" not in results["eval"]  # no training captions of the unseen class: no prototype
    assert results["eval"]["num_samples"] == 3 == results["eval"]["num_seen_samples"]
    model = DualDenoisingModel.from_pretrained(output_dir)
    assert model.config.objective == "contrastive" and model.text_model is None


def test_streaming_with_gradient_checkpointing(workspace, tmp_path):
    output_dir = tmp_path / "out"
    args = T.parse_args(pretrain_argv(workspace, output_dir, "--streaming", "--shuffle_buffer_size", "8",
                                      "--max_train_steps", "2", "--gradient_checkpointing"))
    results = T.pretrain(args)
    assert results["global_step"] == 2 and results["data"]["num_train_rows"] is None
    assert results["eval"]["num_samples"] == 4  # the eval split is read whole
    assert DualDenoisingModel.from_pretrained(output_dir).config.objective == "dual_denoising"


def test_parameter_groups_exclude_norms_biases_and_tokens():
    model = DualDenoisingModel(tester.get_config())
    T.freeze_unused_parameters(model)
    decay, no_decay = T.parameter_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    not_decayed = {names[id(p)] for p in no_decay["params"]}
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05
    assert {"encoder.cls_token", "encoder.cls_position", "denoiser.token_embedding"} <= not_decayed
    assert "logit_scale" not in decayed | not_decayed and "decoder.mask_token" not in decayed | not_decayed  # frozen
    assert all(n.endswith("weight") and model.get_parameter(n).ndim == 2 for n in decayed)
    assert any(n.endswith(".bias") for n in not_decayed) and any("norm" in n for n in not_decayed)


def test_help_lists_every_option(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    assert exit_info.value.code == 0
    shown = capsys.readouterr().out
    for spec in dataclasses.fields(T.PretrainingArguments):
        assert f"--{spec.name}" in shown, spec.name


def test_cli_subcommand_takes_the_same_options():
    namespace = cli.build_parser().parse_args(["pretrain", "--dataset", "d", "--output_dir", "o", "--mixed_precision", "bf16",
                                   "--streaming", "--max_train_steps", "3"])
    assert namespace.func is not None and namespace.mixed_precision == "bf16" and namespace.streaming
    with pytest.raises(ValueError, match="--max_train_steps"):
        T.parse_args(["--dataset", "d", "--output_dir", "o", "--streaming"])
    with pytest.raises(ValueError, match="one of --preset"):
        T.parse_args(["--dataset", "d", "--output_dir", "o", "--preset", "tiny", "--config", "c"])


CONFIGS = REPO / "examples" / "accelerate_configs"


@pytest.mark.parametrize("name, distributed, processes", [
    ("cpu.yaml", "NO", 1), ("single_gpu.yaml", "NO", 1), ("multi_gpu.yaml", "MULTI_GPU", 8),
    ("multi_node.yaml", "MULTI_GPU", 16), ("fsdp.yaml", "FSDP", 8), ("deepspeed_zero2.yaml", "DEEPSPEED", 8),
])
def test_accelerate_configs_load_and_say_how_to_launch(name, distributed, processes):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = CONFIGS / name
    config = ClusterConfig.from_yaml_file(path)
    assert str(config.distributed_type).split(".")[-1] == distributed and config.num_processes == processes
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    assert any("examples/pretrain.py" in line and ("accelerate launch" in line or "torchrun" in line)
               for line in header), "the launch command is written at the top"
    args = _validate_launch_command(launch_command_parser().parse_args(["--config_file", str(path), str(SCRIPT)]))[0]
    assert args.num_processes == processes


def test_fsdp_config_wraps_the_models_blocks(tmp_path):
    """fsdp.yaml wraps exactly the model's `_no_split_modules`, and those names resolve to classes of a model built
    from a teacher (accelerate raises on a name it cannot find)."""
    from unittest import mock

    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = _validate_launch_command(
        launch_command_parser().parse_args(["--config_file", str(CONFIGS / "fsdp.yaml"), str(SCRIPT)])
    )[0]
    env = {k: v for k, v in prepare_multi_gpu_env(args).items() if k.startswith(("ACCELERATE_", "FSDP_"))}
    with mock.patch.dict(os.environ, env):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.transformer_cls_names_to_wrap == DualDenoisingModel._no_split_modules
    model = DualDenoisingModel.from_teacher(tiny_clip(tmp_path), tester.get_config())
    plugin.set_auto_wrap_policy(model)
    wrapped = {cls.__name__ for cls in plugin.auto_wrap_policy.keywords["transformer_layer_cls"]}
    assert wrapped == set(DualDenoisingModel._no_split_modules)


# ---------------------------------------------------------------------------------------------------------------------
# Scan-style training: --scan_datasets
# ---------------------------------------------------------------------------------------------------------------------
def write_scans(root: Path, shapes_per_class: int = 5) -> Path:
    """SynthShapes-Scan (object only) of the workspace's shapes: the same classes, seed and split."""
    from dual_denoising.synth.scan import build_synthshapes_scan

    dataset, metadata = build_synthshapes_scan("object", shapes_per_class, seed=0, num_points=256, classes=CLASSES,
                                               progress=False)
    return save_triples(dataset, root, metadata=metadata)


def test_scan_datasets_replace_clouds_by_their_own_scans(workspace, tmp_path):
    scans = write_scans(tmp_path / "scans")
    args = T.parse_args(pretrain_argv(workspace, tmp_path / "out", "--scan_datasets", str(scans),
                                      "--scan_probability", "0.5", "--augmentations", "none"))
    config = T.load_model_config(args)
    split = load_triples(workspace["data"], split="train")
    _, rows = T.make_train_dataloader(split, args, config, 0)
    # the scans as the FPS cache holds them (reduced once to the model's point count)
    scan_split = T.reduce_clouds(load_triples(scans, split="train"), config.point_config.num_points).with_format("numpy")
    scan_of = {s: np.asarray(p) for s, p in zip(scan_split["shape_id"], scan_split["points"])}
    complete = split.with_format("numpy")
    replaced = 0
    for epoch in range(4):
        rows.set_epoch(epoch)
        for index in range(len(rows)):
            got = rows[index]["points"].numpy()
            shape_id = complete[index]["shape_id"]
            rng = lambda: np.random.default_rng([args.seed, epoch, index])  # noqa: E731  (the row's own stream)
            as_scan = rows.transform({"points": scan_of[shape_id]}, rng=rng())["points"].numpy()
            as_cloud = rows.transform({"points": complete[index]["points"]}, rng=rng())["points"].numpy()
            assert np.array_equal(got, as_scan) or np.array_equal(got, as_cloud), (epoch, index)
            replaced += np.array_equal(got, as_scan)
    assert 0.3 < replaced / (4 * len(rows)) < 0.7  # about half, by the row's seeded draw

    # the run records the scan folders by name only, and its card says what was mixed in
    output_dir = tmp_path / "run"
    results = T.pretrain(T.parse_args(pretrain_argv(workspace, output_dir, "--scan_datasets", str(scans),
                                                    "--max_train_steps", "2", "--eval_split", "none")))
    assert results["data"]["scan_datasets"] == ["scans (local folder)"] and results["data"]["scan_probability"] == 0.6
    assert results["args"]["scan_datasets"] == ["scans (local folder)"]
    assert str(tmp_path) not in (output_dir / "train_results.json").read_text()
    assert "replaced by its scan with probability 0.6" in (output_dir / "README.md").read_text()


def test_scan_datasets_must_hold_every_training_shape(workspace, tmp_path):
    scans = write_scans(tmp_path / "few", shapes_per_class=3)  # 2 training shapes per class, not 4
    args = T.parse_args(pretrain_argv(workspace, tmp_path / "out", "--scan_datasets", str(scans)))
    with pytest.raises(ValueError, match=r"no scan of 8 of the 16 training shapes .*'chair_0002'.*--shapes-per-class"):
        T.make_train_dataloader(load_triples(workspace["data"], split="train"), args, T.load_model_config(args), 0)
    with pytest.raises(ValueError, match="drop --streaming"):
        T.parse_args(pretrain_argv(workspace, tmp_path / "out", "--scan_datasets", str(scans), "--streaming",
                                   "--max_train_steps", "2"))
    with pytest.raises(ValueError, match=r"--scan_probability must be in \(0, 1\]"):
        T.parse_args(pretrain_argv(workspace, tmp_path / "out", "--scan_datasets", str(scans),
                                   "--scan_probability", "0"))


# ---------------------------------------------------------------------------------------------------------------------
# The trainer's data options: the carved validation split, the seen filter, orientation augmentation, the FPS cache
# ---------------------------------------------------------------------------------------------------------------------
def logged_shape_ids(output_dir: Path) -> set[str]:
    lines = (output_dir / "debug" / "samples_rank0.jsonl").read_text().splitlines()
    return {shape for line in lines for shape in json.loads(line)["shape_ids"]}


def test_validation_shapes_are_carved_out_and_scored(workspace, tmp_path):
    output_dir = tmp_path / "run"
    results = T.pretrain(T.parse_args(pretrain_argv(
        workspace, output_dir, "--validation_per_class", "1", "--eval_split", "validation", "--max_train_steps", "8",
        "--debug_log_samples")))
    train = load_triples(workspace["data"], split="train")
    held_out = set(train.select(T.validation_indices(train["label"], 1).tolist())["shape_id"])
    assert len(held_out) == len(CLASSES)  # the last shape of every class
    trained_on = logged_shape_ids(output_dir)
    assert trained_on and not trained_on & held_out
    assert trained_on == set(train["shape_id"]) - held_out  # 8 updates of 2 over 12 rows: every other row seen
    assert results["eval"]["num_samples"] == len(CLASSES) and results["data"]["num_train_rows"] == 12
    with pytest.raises(ValueError, match="--validation_per_class"):
        T.parse_args(pretrain_argv(workspace, output_dir, "--eval_split", "validation"))


def test_seen_filter_drops_the_unseen_rows(workspace, tmp_path):
    output_dir = tmp_path / "run"
    results = T.pretrain(T.parse_args(pretrain_argv(workspace, output_dir, "--train_on_seen_classes",
                                                    "--max_train_steps", "12", "--debug_log_samples")))
    trained_on = logged_shape_ids(output_dir)
    assert {shape.rsplit("_", 1)[0] for shape in trained_on} == set(SEEN)
    # the open-set figures of the test split (every name a candidate; the unseen among the unseen names; H)
    figures = results["eval"]
    assert figures["num_seen_samples"] == 3 and figures["num_unseen_samples"] == 1
    for key in ("seen_accuracy", "unseen_accuracy", "unseen_only_accuracy", "harmonic_mean"):
        low, high = figures[f"{key}_interval"]
        assert 0.0 <= low <= figures[key] <= high <= 1.0, key
    assert figures["unseen_only_accuracy"] == 1.0  # one unseen class: it is the only candidate


def test_unseen_classes_option_holds_out_the_named_classes(workspace, tmp_path):
    """A split of the user's own (`--unseen_classes`) replaces the metadata's: those classes are never trained on,
    the open-set figures and train_results name them; an unknown name is refused."""
    held_out = [c for c in SEEN][:2]
    output_dir = tmp_path / "run"
    results = T.pretrain(T.parse_args(pretrain_argv(workspace, output_dir, "--train_on_seen_classes", "--unseen_classes",
                                                    ",".join(held_out), "--max_train_steps", "6",
                                                    "--debug_log_samples")))
    assert {shape.rsplit("_", 1)[0] for shape in logged_shape_ids(output_dir)} == set(CLASSES) - set(held_out)
    assert results["data"]["unseen_classes"] == sorted(held_out, key=CLASSES.index)
    assert results["eval"]["num_unseen_samples"] == 2 and results["eval"]["num_seen_samples"] == 2
    with pytest.raises(ValueError, match="not classes of"):
        T.pretrain(T.parse_args(pretrain_argv(workspace, tmp_path / "bad", "--train_on_seen_classes",
                                              "--unseen_classes", "teapot", "--max_train_steps", "1")))


def test_orientation_augmentation_turns_each_cloud_by_one_of_the_24(workspace, tmp_path):
    from dual_denoising.orientations import ORIENTATIONS

    split = load_triples(workspace["data"], split="train")
    batches = {}
    for turn in (False, True):
        args = T.parse_args(pretrain_argv(workspace, tmp_path / "out", "--augmentations", "none",
                                          *(["--orientation_augmentation"] if turn else [])))
        config = T.load_model_config(args)
        _, rows = T.make_train_dataloader(T.reduce_clouds(split, config.point_config.num_points), args, config, 0)
        batches[turn] = [rows[i]["points"].double().numpy() for i in range(len(rows))]
    used = set()
    for clean, turned in zip(batches[False], batches[True]):
        rotation = np.linalg.lstsq(clean, turned, rcond=None)[0].T  # turned = clean @ R^T
        match = [k for k, r in enumerate(ORIENTATIONS) if np.allclose(rotation, r, atol=1e-4)]
        assert len(match) == 1 and np.allclose(turned, clean @ ORIENTATIONS[match[0]].T, atol=1e-5)
        used.add(match[0])
    assert len(used) > 4  # drawn per cloud, not one turn for all


def test_fps_cache_keeps_the_farthest_points_from_the_first(workspace):
    from .conftest import numpy_fps

    split = load_triples(workspace["data"], split="train").with_format("numpy")
    reduced = T.reduce_clouds(split, 64).with_format("numpy")
    for index in (0, 7):
        cloud = np.asarray(split[index]["points"])
        np.testing.assert_array_equal(reduced[index]["points"], cloud[numpy_fps(cloud, 64)])


def test_a_recipe_gives_defaults_and_its_command_reruns_it(tmp_path):
    args = T.parse_args(["--recipe", "dual-denoising-tiny", "--dataset", str(tmp_path / "data"), "--output_dir",
                         str(tmp_path / "out"), "--max_train_steps", "5"])
    recipe = T.load_recipe("dual-denoising-tiny")
    assert args.max_train_steps == 5 and args.learning_rate == recipe["learning_rate"]  # the command line wins
    assert json.loads(args.config_overrides) == json.loads(recipe["config_overrides"])
    command = T.recipe_command(args)
    assert str(tmp_path) not in command and command.startswith("dual-denoising pretrain ")
    import shlex

    words = shlex.split(command)[2:]
    words = [str(tmp_path / w) if w in ("data", "out") else w for w in words]
    assert T.parse_args(words) == dataclasses.replace(args, recipe=None)
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        T.parse_args(["--recipe", "nope", "--dataset", "d", "--output_dir", "o"])
    namespace = cli.build_parser().parse_args(["pretrain", "--recipe", "ulip-tiny", "--dataset", "d",
                                               "--output_dir", "o"])
    assert namespace.recipe == "ulip-tiny"


# ---------------------------------------------------------------------------------------------------------------------
# The run folder: nothing of the user's is replaced or deleted unasked, no output is an input
# ---------------------------------------------------------------------------------------------------------------------
def run_cli_pretrain(ws: dict[str, Path], output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = pretrain_argv(ws, output_dir, "--max_train_steps", "2", "--eval_split", "none", *extra)
    return subprocess.run([sys.executable, "-m", "dual_denoising.cli", "pretrain", *argv], env=ENV, cwd=REPO,
                          capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)


def assert_one_line_refusal(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr.strip().splitlines()[-1], result.stderr.strip().splitlines()[-1]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_with_the_users_files_is_refused_and_left_as_it_was(workspace, tmp_path):
    mine = tmp_path / "myproj"
    (mine / "checkpoint-1").mkdir(parents=True)
    for name, text in (("README.md", "my notes"), ("config.json", "{}"), ("trainer_log.jsonl", "mine\n"),
                       ("checkpoint-1/state.txt", "my state")):
        (mine / name).write_text(text)
    before = snapshot(mine)
    assert_one_line_refusal(run_cli_pretrain(workspace, mine, "--checkpointing_steps", "1",
                                             "--checkpoints_total_limit", "1"), "did not write")
    assert snapshot(mine) == before
    # a checkpoint folder the trainer did not write is never written over, even when asked to overwrite
    assert_one_line_refusal(run_cli_pretrain(workspace, mine, "--checkpointing_steps", "1", "--overwrite_output_dir"),
                            "checkpoint-1, which this trainer did not write")
    assert snapshot(mine) == before
    # asked to, without checkpoints: the run writes its files and deletes nothing it did not write
    result = run_cli_pretrain(workspace, mine, "--overwrite_output_dir")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (mine / "checkpoint-1" / "state.txt").read_text() == "my state" and T.list_checkpoints(mine) == []
    assert (mine / "model.safetensors").is_file() and (mine / "README.md").read_text() != "my notes"


def test_no_output_is_an_input(workspace, tmp_path):
    teacher = tmp_path / "teacher"
    shutil.copytree(workspace["teacher"], teacher)
    before = snapshot(teacher)
    ws = {**workspace, "teacher": teacher}
    for output_dir in (teacher, teacher / "sub", workspace["data"]):
        assert_one_line_refusal(run_cli_pretrain(ws, output_dir, "--overwrite_output_dir"), "is (or holds, or is inside)")
    assert snapshot(teacher) == before


def test_a_second_run_never_takes_the_first_runs_checkpoints(workspace, tmp_path):
    first = tmp_path / "run"
    assert run_cli_pretrain(workspace, first, "--checkpointing_steps", "1").returncode == 0
    assert [p.name for p in T.list_checkpoints(first)] == ["checkpoint-1", "checkpoint-2"]
    before = snapshot(first)
    assert_one_line_refusal(run_cli_pretrain(workspace, first, "--checkpointing_steps", "1"), "earlier run")
    assert snapshot(first) == before
    # afresh, asked to: the earlier checkpoints go, and the new run's are the only ones `latest` can see
    result = run_cli_pretrain(workspace, first, "--checkpointing_steps", "2", "--overwrite_output_dir")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [p.name for p in T.list_checkpoints(first)] == ["checkpoint-2"]

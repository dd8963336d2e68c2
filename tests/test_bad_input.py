"""Bad input, through the command line (a subprocess: exit code 1, one line, no traceback) and through the pipeline:
every case is refused with a message that names the problem, and nothing a user gave is replaced."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dual_denoising.shipped import DEFAULT_MODEL_DIR, PRETRAINED_DIR, shipped_models

SHIPPED = sorted(shipped_models())
CONTRASTIVE = next(
    (name for name, folder in shipped_models().items()
     if json.loads((folder / "config.json").read_text())["objective"] == "contrastive"),
    None,
)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dual_denoising.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, stdin=subprocess.DEVNULL, timeout=300)


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert re.search(fragment, message, re.IGNORECASE), (fragment, message)


@pytest.fixture(scope="module")
def cloud_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clouds") / "cone.xyz"
    rng = np.random.default_rng(0)
    np.savetxt(path, rng.normal(size=(512, 3)))
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Data loss
# ----------------------------------------------------------------------------------------------------------------------
def test_embed_never_replaces_an_input(tmp_path, cloud_file):
    text_input = tmp_path / "X.txt"
    text_input.write_bytes(cloud_file.read_bytes())
    before = text_input.read_bytes()
    # the row-order list goes to X.rows.txt, never to the input X.txt
    result = run_cli("embed", str(text_input), "--out", str(tmp_path / "X.npy"))
    assert result.returncode == 0, result.stderr
    assert text_input.read_bytes() == before
    assert (tmp_path / "X.rows.txt").read_text().split() == [str(text_input)]
    # an --out that is an input is refused, even with --overwrite
    array_input = tmp_path / "a.npy"
    np.save(array_input, np.random.default_rng(1).normal(size=(300, 3)))
    before = array_input.read_bytes()
    assert_refused(run_cli("embed", str(array_input), "--out", str(array_input), "--overwrite"), "input")
    assert array_input.read_bytes() == before
    # an existing row-order file is not replaced without --overwrite
    assert_refused(run_cli("embed", str(text_input), "--out", str(tmp_path / "X.npy")), "exists", "--overwrite")
    # embed has no labels to search the orientations with
    for searched in ("auto", "pca"):
        assert_refused(run_cli("embed", str(text_input), "--out", str(tmp_path / "Y.npy"), "--up-axis", searched),
                       f"--up-axis {searched}", "y, z or x")


# ----------------------------------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "labels, fragments",
    [
        (["chair", ""], ("blank",)),
        (["chair", "chair"], ("twice", "chair")),
        (["chair,,table"], ("blank",)),
    ],
)
def test_cli_refuses_bad_labels(cloud_file, labels, fragments):
    assert_refused(run_cli("classify", str(cloud_file), "--labels", *labels), *fragments)


def test_cli_splits_comma_separated_labels_as_python_does(cloud_file):
    result = run_cli("classify", str(cloud_file), "--labels", "table,chair,cone", "--json")
    assert result.returncode == 0, result.stderr
    ranking = json.loads(result.stdout)[str(cloud_file)]
    assert sorted(r["label"] for r in ranking) == ["chair", "cone", "table"]


@pytest.mark.parametrize("flag, value", [("--top-k", "0"), ("--top-k", "-1"), ("--batch-size", "0")])
def test_cli_refuses_counts_below_one(cloud_file, flag, value):
    assert_refused(run_cli("classify", str(cloud_file), "--labels", "chair", "table", flag, value), flag, "at least 1")


@pytest.mark.skipif(CONTRASTIVE is None, reason="no contrastive model is shipped")
def test_cli_refuses_noise_options_for_a_model_without_noise(cloud_file):
    result = run_cli("classify", str(cloud_file), "--labels", "chair", "table", "--model", CONTRASTIVE,
                     "--num-noise-samples", "4")
    assert_refused(result, "--num-noise-samples", "contrastive")


def test_cli_file_problems(tmp_path):
    nan_mesh = tmp_path / "nan.obj"
    nan_mesh.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv nan 0 1\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 5\n")
    assert_refused(run_cli("classify", str(nan_mesh), "--labels", "a", "b"), "nan.obj", "NaN")
    assert_refused(run_cli("classify", str(tmp_path), "--labels", "a", "b"), "folder")
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(os.urandom(256))
    result = run_cli("classify", str(garbage), "--labels", "a", "b")
    assert_refused(result, "garbage.npy")
    assert "allow_pickle" not in result.stderr
    few = tmp_path / "few.xyz"
    np.savetxt(few, np.random.default_rng(0).normal(size=(5, 3)))
    assert_refused(run_cli("classify", str(few), "--labels", "a", "b"), "few.xyz", "needs at least")
    same = tmp_path / "same.xyz"
    np.savetxt(same, np.ones((500, 3)))
    assert_refused(run_cli("classify", str(same), "--labels", "a", "b"), "same.xyz", "degenerate")


def _model_copy(tmp_path: Path, name: str = "model") -> Path:
    """A copy of the shipped default's folder, with the shipped models' shared text tower beside it."""
    folder = tmp_path / name
    shutil.copytree(DEFAULT_MODEL_DIR, folder)
    shutil.copytree(PRETRAINED_DIR / "shared", tmp_path / "shared", dirs_exist_ok=True)
    return folder


def test_cli_model_problems(tmp_path, cloud_file):
    args = ("classify", str(cloud_file), "--labels", "a", "b", "--model")
    # a folder that does not exist: an immediate, plain answer (no Hub retries)
    assert_refused(run_cli(*args, str(tmp_path / "no" / "such" / "model")), "no such model folder")
    # another model type: no trust_remote_code advice, no interactive prompt
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    result = run_cli(*args, str(other))
    assert_refused(result, "'bert'", "not a Dual Denoising model")
    assert "trust_remote_code" not in result.stderr
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "made-up"}))
    assert_refused(run_cli(*args, str(unknown)), "made-up")
    # truncated weights
    truncated = _model_copy(tmp_path, "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    assert_refused(run_cli(*args, str(truncated)), "weights cannot be read", "truncated")
    # no tokenizer files: say so, not "install sentencepiece"
    no_tokenizer = _model_copy(tmp_path, "no-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
        (no_tokenizer / name).unlink(missing_ok=True)
    result = run_cli(*args, str(no_tokenizer))
    assert_refused(result, "no tokenizer files", "save_pretrained writes the model only", r"tokenizer.*save_pretrained")
    assert "sentencepiece" not in result.stderr and "from_teacher" not in result.stderr
    # pickled weights: named as what they are, never "damaged", never weights_only advice
    pickled = _model_copy(tmp_path, "pickled")
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    result = run_cli(*args, str(pickled))
    assert_refused(result, "pytorch_model.bin", "pickle", "only safetensors")
    assert "weights_only" not in result.stderr and "damaged" not in result.stderr
    # a mistyped folder inside an existing one is a folder, not a Hub id (no Hub retries)
    (tmp_path / "runs").mkdir()
    assert_refused(run_cli(*args, "runs/my-modle", cwd=tmp_path), "runs/my-modle", "no such model folder")


def test_pipeline_on_a_folder_without_a_tokenizer_says_what_to_save(tmp_path, cloud):
    from transformers import pipeline

    folder = _model_copy(tmp_path, "model-only")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink(missing_ok=True)
    classifier = pipeline("zero-shot-3d-classification", model=str(folder))
    with pytest.raises(ValueError, match="holds no tokenizer.*save the teacher's tokenizer there"):
        classifier(cloud, candidate_labels=["a", "b"])
    # class embeddings need no tokenizer
    embeds = torch.randn(2, classifier.model.config.embed_dim)
    assert len(classifier(cloud, candidate_labels=["a", "b"], text_embeds=embeds)) == 2


def test_cli_never_runs_code_from_a_model_folder(tmp_path, cloud_file):
    """A tokenizer_config.json that names custom code: refused in one line, whatever stdin says, and the folder's
    Python never runs."""
    folder = _model_copy(tmp_path, "custom-code")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    marker = tmp_path / "ran"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    for command in (("classify", str(cloud_file), "--labels", "a", "b"), ("embed", str(cloud_file), "--out",
                                                                           str(tmp_path / "e.npy"))):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        result = subprocess.run([sys.executable, "-m", "dual_denoising.cli", *command, "--model", str(folder)],
                                input="y\ny\n", capture_output=True, text=True, env=env, timeout=300)
        assert_refused(result, "custom code", "never runs code")
        assert "[y/N]" not in result.stdout + result.stderr
    assert not marker.exists()


def test_a_bfloat16_tensor_is_read_like_float32(classifier, cloud):
    import torch

    as_bf16 = classifier(torch.from_numpy(cloud).bfloat16(), candidate_labels=["chair", "table"])
    as_f32 = classifier(torch.from_numpy(cloud).bfloat16().float(), candidate_labels=["chair", "table"])
    assert as_bf16 == as_f32


def test_many_labels_are_embedded_in_batches():
    from dual_denoising.prompts import TEXT_BATCH_SIZE, encode_class_names

    sizes = []

    def text_features(input_ids, attention_mask=None):
        sizes.append(len(input_ids))
        return torch.nn.functional.one_hot(input_ids[:, 0] % 16, 16).float()

    class Tokenizer:
        def __call__(self, texts, **kwargs):
            return {"input_ids": torch.tensor([[len(t)] for t in texts]), "attention_mask": torch.ones(len(texts), 1)}

    import torch

    embeds = encode_class_names(text_features, Tokenizer(), [f"label {i}" for i in range(300)], ["a {}", "b {}"])
    assert embeds.shape == (300, 16) and max(sizes) <= TEXT_BATCH_SIZE and sum(sizes) == 600


def test_cli_push_to_hub_fails_before_training(tmp_path):
    result = run_cli("pretrain", "--dataset", str(tmp_path / "data"), "--output_dir", str(tmp_path / "out"),
                     "--preset", "tiny", "--push_to_hub", "--report_to", "none")
    assert_refused(result, "--push_to_hub")
    assert not (tmp_path / "out" / "checkpoint-1").exists()


# ----------------------------------------------------------------------------------------------------------------------
# The pipeline
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier():
    from transformers import pipeline

    return pipeline("zero-shot-3d-classification")


@pytest.fixture(scope="module")
def cloud() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(600, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "labels, fragment",
    [
        (["chair", ""], "blank"),
        (["chair", "  "], "blank"),
        (["chair", "chair"], "twice"),
        (["Chair", "chair"], "reads the same"),
        (["night_stand", "night  stand"], "reads the same"),
        (["chair", "x" * 201], "at most 200"),
        (["chair", 3], "must be a string"),
        (["chair", None], "must be a string"),
        (["table,chair"], "comma"),
        ([], "empty"),
        (7, "list of strings"),
    ],
)
def test_pipeline_refuses_bad_labels(classifier, cloud, labels, fragment):
    with pytest.raises(ValueError, match=fragment):
        classifier(cloud, candidate_labels=labels)


def test_pipeline_string_labels_are_split_on_commas(classifier, cloud):
    ranking = classifier(cloud, candidate_labels="table, chair,cone")
    assert sorted(r["label"] for r in ranking) == ["chair", "cone", "table"]


def test_pipeline_bad_calls(classifier, cloud):
    with pytest.raises(ValueError, match="no point clouds"):
        classifier([], candidate_labels=["a", "b"])
    with pytest.raises(ValueError, match="exactly one"):
        classifier(cloud, candidate_labels=["a", "b"], hypothesis_template="{} of {}")
    with pytest.raises(ValueError, match="exactly one"):
        classifier(cloud, candidate_labels=["a", "b"], hypothesis_template="a model")
    dim = classifier.model.config.embed_dim
    with pytest.raises(ValueError, match=r"text_embeds must be \(labels, embed_dim\)"):
        classifier(cloud, candidate_labels=["a", "b"], text_embeds=np.ones((2, dim + 1), dtype=np.float32))
    with pytest.raises(ValueError, match="degenerate"):
        classifier(np.zeros((600, 3)), candidate_labels=["a", "b"])
    if classifier.model.config.objective == "contrastive":
        with pytest.raises(ValueError, match="num_noise_samples"):
            classifier(cloud, candidate_labels=["a", "b"], num_noise_samples=4)


def test_pipeline_text_embeds_with_a_batch_and_a_bounded_cache(classifier, cloud):
    dim = classifier.model.config.embed_dim
    embeds = np.random.default_rng(0).normal(size=(2, dim)).astype(np.float32)
    results = classifier([cloud, cloud * 2, cloud + 1], candidate_labels=["a", "b"], text_embeds=embeds, batch_size=2)
    assert len(results) == 3 and all(len(r) == 2 for r in results)
    for i in range(50):
        classifier(cloud, candidate_labels=["a", "b"], text_embeds=embeds)  # the same embeddings: one entry
        classifier(cloud, candidate_labels=[f"x{i}", "y"])
    assert len(classifier._class_embeds_cache) <= classifier.max_cached_label_sets


def test_real_world_coordinates_give_the_centred_embedding(classifier):
    from dual_denoising.pipeline_dual_denoising import prepare_point_cloud

    rng = np.random.default_rng(0)
    shape = rng.normal(size=(2000, 3)) * np.array([0.5, 1.0, 0.3])
    offset = shape + np.array([4e6, -3e6, 4e6])  # float64, metres in a projected coordinate system
    config = classifier.model.config.point_config
    a = prepare_point_cloud(shape, config.num_points, 32)
    b = prepare_point_cloud(offset, config.num_points, 32)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    with torch.no_grad():
        ea = classifier.model.get_point_features(a[None], generator=[torch.Generator().manual_seed(0)])
        eb = classifier.model.get_point_features(b[None], generator=[torch.Generator().manual_seed(0)])
    torch.testing.assert_close(ea, eb, atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------------------------------------
# Artefacts carry no path of the machine that made them
# ----------------------------------------------------------------------------------------------------------------------
def _absolute_paths(folder: Path) -> list[str]:
    pattern = re.compile(r"(?<![\w.])(/(?:home|root|tmp|work|Users|mnt|var|opt)/[\w./-]+|[A-Z]:\\\\[\w\\\\]+)")
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".txt", ".py", ".yaml"):
            found += [f"{path.name}: {m}" for m in pattern.findall(path.read_text(errors="replace"))]
    return found


def test_shipped_and_saved_folders_hold_no_absolute_paths(tmp_path):
    assert _absolute_paths(PRETRAINED_DIR) == []
    from transformers import pipeline

    classifier = pipeline("zero-shot-3d-classification")
    classifier.save_pretrained(tmp_path / "saved")
    assert _absolute_paths(tmp_path / "saved") == []


def test_evaluate_refuses_a_file_as_its_output_before_evaluating(tmp_path, cloud_file):
    out = tmp_path / "report"
    out.write_text("mine")
    result = run_cli("evaluate", "--model", "ulip-tiny", "--dataset", str(tmp_path / "no-data"), "--out", str(out))
    assert_refused(result, "is a file")
    assert out.read_text() == "mine"


def test_no_output_is_an_input(tmp_path, cloud_file):
    """An import never writes into the folder it reads, nor evaluate into its model or dataset, even with
    --overwrite; the user's files stay byte-identical."""
    src = tmp_path / "shapes"
    (src / "cone").mkdir(parents=True)
    (src / "cone" / "a.xyz").write_bytes(cloud_file.read_bytes())
    for out in (src, src / "imported"):
        assert_refused(run_cli("import", "folder", str(src), "--out", str(out), "--overwrite"),
                       "is \\(or holds, or is inside\\) the source folder")
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["cone", "cone/a.xyz"]
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    result = run_cli("evaluate", "--model", str(model), "--dataset", str(src), "--out", str(model / "report"))
    assert_refused(result, "--out .* is \\(or holds, or is inside\\) the --model")
    assert sorted(p.name for p in model.iterdir()) == ["config.json"]

"""`pipeline("zero-shot-3d-classification")`: zero-shot point-cloud classification, shaped like transformers'
`zero-shot-image-classification`.

    >>> import dual_denoising
    >>> from transformers import pipeline
    >>> classifier = pipeline("zero-shot-3d-classification", model="path/to/model")
    >>> classifier("chair.ply", candidate_labels=["chair", "table", "lamp"])
    [{'score': 0.97, 'label': 'chair'}, {'score': 0.02, 'label': 'table'}, {'score': 0.01, 'label': 'lamp'}]

Flat in the package and importing only torch, numpy, transformers and sibling modules, so that a saved model folder
carries it for `trust_remote_code=True` users.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .point_ops import check_points, farthest_point_sample, normalize_to_unit_sphere
from .prompts import DEFAULT_TEMPLATES, encode_class_names

TASK = "zero-shot-3d-classification"
# The small models shipped in the package, one folder each under pretrained/, addressed by their folder name (a short
# name such as "dual-denoising-tiny"); pretrained/index.json names the task's default and why it was chosen.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def embedded_models() -> dict[str, Path]:
    """`{short name: folder}` of the models shipped in the package (empty where the package data is absent, e.g. in a
    model folder's remote-code copy of this file)."""
    if not PRETRAINED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(PRETRAINED_DIR.iterdir()) if (p / "config.json").is_file()}


def default_model_name() -> str | None:
    index = PRETRAINED_DIR / "index.json"
    return json.loads(index.read_text())["default"] if index.is_file() else None


def resolve_model(name_or_path: str | Path) -> str:
    """A shipped model's short name -> its folder; anything else (a folder, a Hub id) is returned as it is. An
    existing local folder of the same name wins over the short name."""
    name = str(name_or_path)
    models = embedded_models()
    if name in models and not Path(name).exists():
        return str(models[name])
    return name


_default_name = default_model_name()
# The task's default model (examples/train_embedded_default.py and the README's "Choosing the default").
EMBEDDED_MODEL = PRETRAINED_DIR / _default_name if _default_name else None


def prepare_point_cloud(points: Any, num_points: int, min_points: int, in_channels: int = 3) -> torch.Tensor:
    """One cloud as the model expects it: float32 `(num_points, C)` on the unit sphere (docs/design.md section 2).

    More points than `num_points` are reduced by farthest point sampling (from index 0); fewer are filled up by
    repeating points (a fixed, seeded draw); then the cloud is normalised. Fewer than `min_points`, NaN or Inf raise
    a `ValueError`.
    """
    cloud = torch.as_tensor(np.asarray(points, dtype=np.float32))
    if cloud.dim() != 2 or cloud.shape[-1] not in (3, 6):
        raise ValueError(
            f"a point cloud must be an array of shape (N, 3) or (N, 6) (xyz, optionally RGB); got shape "
            f"{tuple(cloud.shape)}"
        )
    if cloud.shape[0] < min_points:
        raise ValueError(f"the point cloud has {cloud.shape[0]} points; this model needs at least {min_points}")
    check_points(cloud[None], "point cloud")
    cloud = cloud[:, :in_channels] if cloud.shape[-1] >= in_channels else cloud
    if cloud.shape[-1] != in_channels:
        raise ValueError(f"this model takes {in_channels} channels per point; got an (N, {cloud.shape[-1]}) cloud")
    if cloud.shape[0] > num_points:
        cloud = cloud[farthest_point_sample(cloud[None], num_points)[0]]
    elif cloud.shape[0] < num_points:
        extra = torch.randint(cloud.shape[0], (num_points - cloud.shape[0],), generator=torch.Generator().manual_seed(0))
        cloud = torch.cat([cloud, cloud[extra]])
    return normalize_to_unit_sphere(cloud)  # after resampling, as ULIP, the trainer and the evaluation do


class ZeroShot3DClassificationPipeline(Pipeline):
    """Zero-shot point-cloud classification with a `DualDenoisingModel`: the 3D embedding (parallel noise inference)
    against the teacher's text embeddings of the candidate labels.

    Inputs: a numpy/torch cloud `(N, 3)` or `(N, 6)`, a batch `(B, N, 3)`, a file path in any format
    `dual_denoising.fileio` reads (.npy .npz .xyz .txt .pts .ply .obj .off .stl .glb), or a list of them.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._class_embeds_cache: dict[tuple, torch.Tensor] = {}

    def __call__(self, inputs, candidate_labels: list[str] | None = None, **kwargs):
        """Classify point cloud(s).

        Args:
            inputs: a cloud, a batch array `(B, N, C)`, a file path, or a list of those.
            candidate_labels: the labels to choose from (required).
            hypothesis_template: a template with `{}` or a list of templates to average (default: a 3D ensemble).
            text_embeds: precomputed class embeddings `(C, D)` in the order of `candidate_labels` (skips the text
                tower).
            num_noise_samples, num_inference_steps: K and S of parallel noise inference (default: the model's).
            seed: seeds the denoising noise, so the same call gives the same answer (default 0).
            batch_size: clouds per forward pass.
        Returns:
            `[{"score", "label"}]` sorted by score, or one such list per cloud for a list or batch input.
        """
        if isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 3:
            inputs = list(inputs)
        elif isinstance(inputs, tuple):
            inputs = list(inputs)
        return super().__call__(inputs, candidate_labels=candidate_labels, **kwargs)

    def _sanitize_parameters(
        self,
        candidate_labels=None,
        hypothesis_template=None,
        text_embeds=None,
        num_noise_samples=None,
        num_inference_steps=None,
        seed=None,
        **kwargs,
    ):
        if kwargs:
            raise ValueError(f"unknown arguments for {TASK}: {sorted(kwargs)}")
        preprocess = {}
        if candidate_labels is not None:
            preprocess["candidate_labels"] = candidate_labels
        if hypothesis_template is not None:
            preprocess["hypothesis_template"] = hypothesis_template
        if text_embeds is not None:
            preprocess["text_embeds"] = text_embeds
        forward = {}
        if num_noise_samples is not None:
            forward["num_noise_samples"] = num_noise_samples
        if num_inference_steps is not None:
            forward["num_inference_steps"] = num_inference_steps
        if seed is not None:
            forward["seed"] = seed
        return preprocess, forward, {}

    # -- labels ------------------------------------------------------------------------------------------------------
    def _label_set(self, candidate_labels, hypothesis_template, text_embeds) -> tuple:
        """Validate the labels and cache their embeddings; returns the cache key."""
        if isinstance(candidate_labels, str):
            candidate_labels = [label.strip() for label in candidate_labels.split(",")]
        if not candidate_labels:
            raise ValueError("candidate_labels is empty; pass the labels to choose from, e.g. ['chair', 'table']")
        templates = (hypothesis_template,) if isinstance(hypothesis_template, str) else tuple(hypothesis_template)
        if text_embeds is not None:
            text_embeds = torch.as_tensor(np.asarray(text_embeds, dtype=np.float32))
            if text_embeds.shape[0] != len(candidate_labels):
                raise ValueError(
                    f"text_embeds has {text_embeds.shape[0]} rows for {len(candidate_labels)} candidate labels"
                )
            key = (tuple(candidate_labels), "text_embeds", id(text_embeds))
            self._class_embeds_cache[key] = torch.nn.functional.normalize(text_embeds, dim=-1)
            return key
        key = (tuple(candidate_labels), templates)
        if key not in self._class_embeds_cache:
            if self.tokenizer is None:
                raise ValueError("this pipeline has no tokenizer: pass text_embeds=... or a model folder with one")
            self._class_embeds_cache[key] = encode_class_names(
                self.model.get_text_features, self.tokenizer, list(candidate_labels), templates, self.device
            )
        return key

    # -- pipeline steps ----------------------------------------------------------------------------------------------
    def preprocess(self, inputs, candidate_labels=None, hypothesis_template=DEFAULT_TEMPLATES, text_embeds=None):
        if candidate_labels is None:
            raise ValueError("candidate_labels is required, e.g. classifier(cloud, candidate_labels=['chair', 'lamp'])")
        if isinstance(inputs, (str, Path)):
            from .fileio import load_points

            inputs = load_points(inputs)
        config = self.model.config.point_config
        cloud = prepare_point_cloud(
            inputs, config.num_points, max(config.group_size, config.num_groups), config.in_channels
        )
        return {"points": cloud[None], "label_set": self._label_set(candidate_labels, hypothesis_template, text_embeds)}

    def _forward(self, model_inputs, num_noise_samples=None, num_inference_steps=None, seed=0):
        label_set = model_inputs["label_set"]
        batched = isinstance(label_set, list)  # the batch collator turns non-tensor fields into lists
        keys = label_set if batched else [label_set]
        if len(set(keys)) != 1:
            raise ValueError("all clouds of one call must share candidate_labels")
        class_embeds = self._class_embeds_cache[keys[0]]
        points = model_inputs["points"].to(self.device, self.model.dtype)
        point_embeds = self.model.get_point_features(
            points,
            num_noise_samples=num_noise_samples,
            num_inference_steps=num_inference_steps,
            # one generator per cloud: a cloud's answer does not depend on the batch it is in
            generator=[torch.Generator(self.device).manual_seed(seed) for _ in range(points.shape[0])],
        )
        logits = self.model.logit_scale.exp().float() * point_embeds @ class_embeds.to(point_embeds).T
        labels = list(keys[0][0])
        return {"logits": logits, "candidate_labels": [labels] * len(keys) if batched else labels}

    def postprocess(self, model_outputs):
        scores = model_outputs["logits"][0].softmax(dim=-1).tolist()
        labels = model_outputs["candidate_labels"]
        return [
            {"score": score, "label": label} for score, label in sorted(zip(scores, labels), key=lambda x: -x[0])
        ]


PIPELINE_REGISTRY.register_pipeline(
    TASK,
    pipeline_class=ZeroShot3DClassificationPipeline,
    pt_model=AutoModel,
    default={"model": (str(EMBEDDED_MODEL), None)} if EMBEDDED_MODEL is not None else None,
    type="multimodal",
)

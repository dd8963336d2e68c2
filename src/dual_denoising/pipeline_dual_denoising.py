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

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_dual_denoising import READOUTS
from .orientations import _TO_Y_UP, choose_orientation, every_orientation, principal_axes
from .point_ops import farthest_point_sample, normalize_to_unit_sphere
from .prompts import DEFAULT_TEMPLATES, check_templates, encode_class_names, normalize_labels
from .shipped import DEFAULT_MODEL_DIR

TASK = "zero-shot-3d-classification"
# The models are trained Y-up. A cloud whose up axis is x or z is turned (a proper rotation) so that it points along +y;
# "auto" classifies the cloud in every axis-aligned orientation and keeps one by `choose_orientation`: the most
# confident, weighed with the model's orientation head where it has one (`DualDenoisingModel.get_orientation_logits`).
# "pca" (a cloud in an arbitrary pose) first turns the cloud's principal axes onto the coordinate axes, then does "auto".
UP_AXES = ("y", "z", "x", "auto", "pca")
SEARCHED_UP_AXES = ("auto", "pca")  # the up axes found by classifying the cloud in the 24 orientations
def default_up_axis(model) -> str:
    """The up axis assumed when the caller names none: `"auto"` for a model that can find it (it carries an
    orientation head, as the shipped default does), `"y"` (the training convention) for any other."""
    return "auto" if getattr(model, "orientation_head", None) is not None else "y"


def prepare_point_cloud(
    points: Any, num_points: int, min_points: int, in_channels: int = 3, source: str | None = None,
    up_axis: str = "y",
) -> torch.Tensor:
    """One cloud as the model expects it: float32 `(num_points, C)` on the unit sphere (docs/design.md section 2).

    `up_axis` names the cloud's up axis; the cloud is turned Y-up, as the models are trained. The cloud is first
    centred and scaled in float64, so real-world coordinates (a ~1e6 m offset) lose nothing in the
    cast to float32. More points than `num_points` are reduced by farthest point sampling (from index 0); fewer are
    filled up by repeating points (a fixed, seeded draw); then the cloud is normalised again. Fewer than
    `min_points`, NaN or Inf, or a degenerate cloud (every point the same) raise a `ValueError` naming `source`.
    """
    where = f"{source}: " if source else ""
    if up_axis not in _TO_Y_UP:
        hint = f"; {up_axis!r} needs the labels: pass it to the pipeline" if up_axis in SEARCHED_UP_AXES else ""
        raise ValueError(f"up_axis must be one of {UP_AXES[:3]} here (the axis that points up in the cloud){hint}; "
                         f"got {up_axis!r}")
    if isinstance(points, torch.Tensor):  # any dtype numpy lacks (bfloat16, float8) is widened first
        points = points.detach().cpu()
        points = points.double() if points.is_floating_point() else points
    array = np.asarray(points)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{where}a point cloud must hold numbers; got dtype {array.dtype}")
    array = array.astype(np.float64)
    if array.ndim != 2 or array.shape[-1] not in (3, 6):
        raise ValueError(
            f"{where}a point cloud must be an array of shape (N, 3) or (N, 6) (xyz, optionally RGB); got shape "
            f"{tuple(array.shape)}"
        )
    if array.shape[0] < min_points:
        raise ValueError(f"{where}the point cloud has {array.shape[0]} points; this model needs at least {min_points}")
    if not np.isfinite(array).all():
        row = int(np.nonzero(~np.isfinite(array).all(axis=1))[0][0])
        raise ValueError(f"{where}the point cloud contains NaN or Inf values (first at point {row}); repair or drop them")
    xyz = array[:, :3] - array[:, :3].mean(axis=0)
    extent = np.linalg.norm(xyz, axis=1).max()
    if not extent > 0 or not np.isfinite(extent):
        raise ValueError(f"{where}the point cloud is degenerate: all {len(array)} points are at the same place "
                         "(zero extent), so it has no shape to classify")
    array[:, :3] = (xyz / extent) @ _TO_Y_UP[up_axis].T
    cloud = torch.from_numpy(array.astype(np.float32))
    cloud = cloud[:, :in_channels] if cloud.shape[-1] >= in_channels else cloud
    if cloud.shape[-1] != in_channels:
        raise ValueError(f"{where}this model takes {in_channels} channels per point; got an (N, {cloud.shape[-1]}) cloud")
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
    _load_tokenizer = False  # loaded in __init__ by `shipped.load_tokenizer`: never code, None when there is none

    # label sets whose embeddings are kept, newest last (a long-lived pipeline called with ever new labels stays small)
    max_cached_label_sets = 16

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.tokenizer is None:
            from .shipped import load_tokenizer

            self.tokenizer = load_tokenizer(self.model.name_or_path)
        self._class_embeds_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def __call__(self, inputs, candidate_labels: list[str] | None = None, **kwargs):
        """Classify point cloud(s).

        Args:
            inputs: a cloud, a batch array `(B, N, C)`, a file path, or a list of those.
            candidate_labels: the labels to choose from (required).
            hypothesis_template: a template with `{}` or a list of templates to average (default: a 3D ensemble).
            text_embeds: precomputed class embeddings `(C, D)` in the order of `candidate_labels` (skips the text
                tower).
            num_noise_samples, num_inference_steps: K and S of parallel noise inference (default: the model's).
            inference_point_noise_level: t_in > 0 is randomized smoothing, K noisy copies through the encoder (either
                objective); purification_rounds: PointDAE purification first (Dual Denoising; default: the model's);
                purification_keep_input: with purification, average the embeddings of the cloud as given and of the
                purified cloud (default: the model's).
            readout: where a Dual Denoising model reads the embedding (default: the model's `zero_shot_readout`):
                `"denoiser"` (the x0 estimate, the paper's), `"head"` (its contrastive head: categories it never
                trained on) or `"fusion"` (their normalised mix, `fusion_weight` the head's share); `start_timestep`:
                the denoiser's reading started from the head's embedding noised to t* (SDEdit; -1: from pure noise;
                default: the model's). `"head"`, `"fusion"` and a start t* need a model trained with a contrastive
                head (`contrastive_head_weight > 0`).
            seed: seeds the denoising noise, so the same call gives the same answer (default 0).
            up_axis: the axis that points up in the input, `"y"` (the models' convention), `"z"` (trimesh, most CAD
                tools and scanners) or `"x"`; the cloud is turned Y-up. `"auto"` classifies the cloud in each of the
                24 axis-aligned orientations and keeps one by `choose_orientation`: the most confident, weighed with
                the model's orientation head where it has one (about 25 times the cost of a named axis). `"pca"`, for
                a cloud in an arbitrary pose (not axis-aligned), turns its principal axes onto x, y, z first
                (`principal_axes`), then does the same. Default (`default_up_axis`): `"auto"` for a model with an
                orientation head (the shipped default), else `"y"`.
            batch_size: clouds per forward pass.
        Returns:
            `[{"score", "label"}]` sorted by score, or one such list per cloud for a list or batch input.
        """
        if isinstance(inputs, (np.ndarray, torch.Tensor)) and inputs.ndim == 3:
            inputs = list(inputs)
        elif isinstance(inputs, tuple):
            inputs = list(inputs)
        if isinstance(inputs, list) and not inputs:
            raise ValueError("no point clouds given: pass a cloud, a file path, or a non-empty list of them")
        if candidate_labels is None:
            raise ValueError("candidate_labels is required, e.g. classifier(cloud, candidate_labels=['chair', 'lamp'])")
        return super().__call__(inputs, candidate_labels=normalize_labels(candidate_labels), **kwargs)

    def _sanitize_parameters(
        self,
        candidate_labels=None,
        hypothesis_template=None,
        text_embeds=None,
        num_noise_samples=None,
        num_inference_steps=None,
        inference_point_noise_level=None,
        purification_rounds=None,
        purification_keep_input=None,
        readout=None,
        fusion_weight=None,
        start_timestep=None,
        seed=None,
        up_axis=None,
        **kwargs,
    ):
        if kwargs:
            raise ValueError(f"unknown arguments for {TASK}: {sorted(kwargs)}")
        config = self.model.config
        options = {"num_noise_samples": (num_noise_samples, 1), "num_inference_steps": (num_inference_steps, 1),
                   "inference_point_noise_level": (inference_point_noise_level, 0),
                   "purification_rounds": (purification_rounds, 0)}  # name -> (value, smallest allowed)
        for n, (value, low) in options.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ValueError(f"{n} must be an integer >= {low}; got {value!r}")
        if purification_keep_input is not None and not isinstance(purification_keep_input, bool):
            raise ValueError(f"purification_keep_input must be True or False; got {purification_keep_input!r}")
        if readout is not None and readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}; got {readout!r}")
        if fusion_weight is not None and (isinstance(fusion_weight, bool) or not isinstance(fusion_weight, (int, float))
                                          or not 0 <= fusion_weight <= 1):
            raise ValueError(f"fusion_weight (the head's share in the fusion) must be a number in [0, 1]; got "
                             f"{fusion_weight!r}")
        if start_timestep is not None and (isinstance(start_timestep, bool) or not isinstance(start_timestep, int)
                                           or not -1 <= start_timestep < config.feature_num_train_timesteps):
            raise ValueError(f"start_timestep must be an integer in [-1, {config.feature_num_train_timesteps - 1}] "
                             f"(-1: from pure noise); got {start_timestep!r}")
        if inference_point_noise_level is not None and inference_point_noise_level >= config.point_noise_steps:
            raise ValueError(f"inference_point_noise_level must be below point_noise_steps={config.point_noise_steps}; "
                             f"got {inference_point_noise_level}")
        smoothing = (inference_point_noise_level if inference_point_noise_level is not None
                     else config.inference_point_noise_level) > 0
        method_only = ["num_inference_steps", "purification_rounds"] + ([] if smoothing else ["num_noise_samples"])
        given = [n for n in method_only if options[n][0] is not None]
        readings = {"readout": readout, "fusion_weight": fusion_weight, "start_timestep": start_timestep}
        given += [n for n, value in {"purification_keep_input": purification_keep_input, **readings}.items()
                  if value is not None]
        if given and config.objective != "dual_denoising":
            raise ValueError(f"{' and '.join(given)} apply to Dual Denoising models (num_noise_samples also to "
                             f"randomized smoothing, inference_point_noise_level > 0); this model is the "
                             f"{config.objective} baseline: leave them out")
        preprocess = {}
        if candidate_labels is not None:
            preprocess["candidate_labels"] = candidate_labels
        if hypothesis_template is not None:
            preprocess["hypothesis_template"] = hypothesis_template
        if text_embeds is not None:
            preprocess["text_embeds"] = text_embeds
        if up_axis is not None:
            preprocess["up_axis"] = up_axis
        forward = {}
        if num_noise_samples is not None:
            forward["num_noise_samples"] = num_noise_samples
        for n in ("num_inference_steps", "inference_point_noise_level", "purification_rounds"):
            if options[n][0] is not None:
                forward[n] = options[n][0]
        if purification_keep_input is not None:
            forward["purification_keep_input"] = purification_keep_input
        forward |= {n: value for n, value in readings.items() if value is not None}
        if seed is not None:
            forward["seed"] = seed
        return preprocess, forward, {}

    # -- labels ------------------------------------------------------------------------------------------------------
    def _label_set(self, candidate_labels, hypothesis_template, text_embeds) -> tuple:
        """Validate the labels and cache their embeddings; returns the cache key."""
        candidate_labels = normalize_labels(candidate_labels)
        templates = check_templates(hypothesis_template)
        if text_embeds is not None:
            text_embeds = torch.as_tensor(np.asarray(text_embeds, dtype=np.float32))
            expected = (len(candidate_labels), self.model.config.embed_dim)
            if tuple(text_embeds.shape) != expected:
                raise ValueError(f"text_embeds must be (labels, embed_dim) = {expected}, one row per candidate label in "
                                 f"order; got {tuple(text_embeds.shape)}")
            if not torch.isfinite(text_embeds).all() or (text_embeds.norm(dim=-1) == 0).any():
                raise ValueError("text_embeds holds NaN, Inf or all-zero rows; pass real class embeddings")
            # keyed by content: the same embeddings given again (or per cloud of a batch) share one entry
            key = (tuple(candidate_labels), "text_embeds", hashlib.sha1(text_embeds.numpy().tobytes()).hexdigest())
            self._cache(key, lambda: torch.nn.functional.normalize(text_embeds, dim=-1))
            return key
        key = (tuple(candidate_labels), templates)
        if self.tokenizer is None and key not in self._class_embeds_cache:
            raise ValueError(f"{self.model.name_or_path} holds no tokenizer to embed the labels with (a folder written "
                             "by DualDenoisingModel.save_pretrained holds the model only): save the teacher's "
                             "tokenizer there too (tokenizer.save_pretrained(folder)), or pass text_embeds=...")
        self._cache(key, lambda: encode_class_names(
            self.model.get_text_features, self.tokenizer, list(candidate_labels), templates, self.device
        ))
        return key

    def _cache(self, key: tuple, compute) -> None:
        if key in self._class_embeds_cache:
            self._class_embeds_cache.move_to_end(key)
            return
        self._class_embeds_cache[key] = compute()
        while len(self._class_embeds_cache) > self.max_cached_label_sets:
            self._class_embeds_cache.popitem(last=False)

    # -- pipeline steps ----------------------------------------------------------------------------------------------
    def preprocess(self, inputs, candidate_labels=None, hypothesis_template=DEFAULT_TEMPLATES, text_embeds=None,
                   up_axis=None):
        if candidate_labels is None:
            raise ValueError("candidate_labels is required, e.g. classifier(cloud, candidate_labels=['chair', 'lamp'])")
        source = None
        if isinstance(inputs, (str, Path)):
            from .fileio import load_points

            source, inputs = str(inputs), load_points(inputs)
        config = self.model.config.point_config
        up_axis = up_axis if up_axis is not None else default_up_axis(self.model)
        if up_axis not in UP_AXES:
            raise ValueError(f"up_axis must be one of {UP_AXES} (the axis that points up in the cloud); got {up_axis!r}")
        cloud = prepare_point_cloud(
            inputs, config.num_points, max(config.group_size, config.num_groups), config.in_channels, source=source,
            up_axis="y" if up_axis in SEARCHED_UP_AXES else up_axis,
        )
        if up_axis == "pca":  # principal axes onto x, y, z; which of them is up is then searched as for "auto"
            axes = torch.as_tensor(principal_axes(cloud[:, :3]), dtype=cloud.dtype)
            cloud = torch.cat([cloud[:, :3] @ axes.T, cloud[:, 3:]], dim=-1)
        points = cloud[None]  # (1, N, C); searched: (1, 24, N, C), the cloud in every axis-aligned orientation
        if up_axis in SEARCHED_UP_AXES:
            points = every_orientation(cloud)[None]
        # "auto" keeps the cloud as given unless another orientation is clearly better; "pca"'s frame has no such
        # reading to keep
        keep = (self.model.config.orientation_identity_prior, self.model.config.orientation_keep_threshold) \
            if up_axis == "auto" else (0.0, 1.0)
        return {"points": points, "label_set": self._label_set(candidate_labels, hypothesis_template, text_embeds),
                "keep_as_given": torch.tensor(keep)}

    def _forward(self, model_inputs, num_noise_samples=None, seed=0, **feature_kwargs):
        label_set = model_inputs["label_set"]
        batched = isinstance(label_set, list)  # the batch collator turns non-tensor fields into lists
        keys = label_set if batched else [label_set]
        if len(set(keys)) != 1:
            raise ValueError("all clouds of one call must share candidate_labels")
        class_embeds = self._class_embeds_cache[keys[0]]
        points = model_inputs["points"].to(self.device, self.model.dtype)
        orientations = points.shape[1] if points.dim() == 4 else 0  # up_axis auto or pca: (B, 24, N, C)
        turn_logits = None
        if orientations:
            if getattr(self.model, "orientation_head", None) is not None:  # candidate 0: the cloud as given
                turn_logits = self.model.get_orientation_logits(points[:, 0])  # (B, 24)
            points = points.flatten(0, 1)
        logits = self.model.zero_shot_logits(  # the model's one definition of zero-shot logits
            points,
            class_embeds,
            num_noise_samples=num_noise_samples,
            **feature_kwargs,  # num_inference_steps, inference_point_noise_level, purification_rounds
            # one generator per cloud: a cloud's answer does not depend on the batch it is in
            generator=[torch.Generator(self.device).manual_seed(seed) for _ in range(points.shape[0])],
        )
        if orientations:  # keep each cloud's orientation by the rule of choose_orientation
            logits = logits.unflatten(0, (-1, orientations))
            prior, threshold = model_inputs["keep_as_given"].reshape(-1, 2)[0].tolist()  # one up_axis per call
            pick = choose_orientation(logits, turn_logits, self.model.config.orientation_confidence_weight, prior,
                                      threshold)
            logits = logits[torch.arange(len(logits)), pick]
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
    default={"model": (str(DEFAULT_MODEL_DIR), None)} if DEFAULT_MODEL_DIR is not None else None,
    type="multimodal",
)

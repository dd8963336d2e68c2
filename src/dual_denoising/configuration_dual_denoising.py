"""Dual Denoising configuration: every hyper-parameter of the method (docs/design.md) is a field here."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

OBJECTIVES = ("dual_denoising", "contrastive")
TIMESTEP_SAMPLINGS = ("uniform", "logit_normal")
READOUTS = ("denoiser", "head", "fusion")  # where get_point_features reads the 3D embedding


@strict
class DualDenoisingPointConfig(PreTrainedConfig):
    r"""The 3D side: point tokenizer (FPS + kNN patches, mini-PointNet), transformer encoder and PointDAE decoder.

    Args:
        in_channels: 3 for xyz, 6 for xyz + RGB in [0, 1].
        num_points: N, the points per cloud the model is trained on (larger clouds are reduced by FPS beforehand).
        num_groups: G, patch centres picked by farthest point sampling.
        group_size: k, nearest neighbours per patch.
        hidden_size: W, the encoder width.
        num_hidden_layers: L_e, encoder blocks.
        num_attention_heads: heads of every encoder and decoder block.
        mlp_ratio: MLP width / W in every block.
        drop_path_rate: stochastic depth, rising linearly to this value over the encoder blocks.
        attention_dropout: dropout on attention weights.
        patch_embed_sizes: the mini-PointNet widths `(a, b, c)`: shared MLP in->a->b, max-pool, concat, 2b->c->W.
        position_embed_size: hidden width of the centre position MLP (3 -> this -> W).
        num_decoder_layers: L_d, PointDAE decoder blocks.
        layer_norm_eps: epsilon of every LayerNorm.
        initializer_range: std of the truncated-normal init of linear layers and learned tokens.
    """

    model_type = "dual_denoising_point"
    base_config_key = "point_config"

    in_channels: int = 3
    num_points: int = 1024
    num_groups: int = 64
    group_size: int = 16
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    mlp_ratio: float | int = 4.0
    drop_path_rate: float | int = 0.1
    attention_dropout: float | int = 0.0
    patch_embed_sizes: list[int] | tuple[int, ...] = (128, 256, 512)
    position_embed_size: int = 128
    num_decoder_layers: int = 2
    layer_norm_eps: float | int = 1e-6
    initializer_range: float | int = 0.02

    def validate_architecture(self):
        if self.in_channels not in (3, 6):
            raise ValueError(f"in_channels must be 3 (xyz) or 6 (xyz + RGB); got {self.in_channels}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})"
            )
        if not 1 <= self.group_size <= self.num_points:
            raise ValueError(f"group_size ({self.group_size}) must be between 1 and num_points ({self.num_points})")
        if not 1 <= self.num_groups <= self.num_points:
            raise ValueError(f"num_groups ({self.num_groups}) must be between 1 and num_points ({self.num_points})")
        if len(self.patch_embed_sizes) != 3:
            raise ValueError(f"patch_embed_sizes must hold three widths (a, b, c); got {self.patch_embed_sizes}")


@strict
class DualDenoisingDenoiserConfig(PreTrainedConfig):
    r"""The feature denoising network: a small transformer over M feature tokens that cross-attends to point tokens.

    Args:
        hidden_size: denoiser width (may differ from the encoder's; keys/values are projected from it).
        num_hidden_layers: L_f blocks; block j reads encoder block m(j), spread evenly over the encoder.
        num_attention_heads: heads of the self- and cross-attention.
        num_feature_tokens: M; the D-dimensional feature is cut into M tokens of D / M values.
        mlp_ratio, drop_path_rate, attention_dropout, layer_norm_eps, initializer_range: as in the point config.
    """

    model_type = "dual_denoising_denoiser"
    base_config_key = "denoiser_config"

    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_feature_tokens: int = 4
    mlp_ratio: float | int = 4.0
    drop_path_rate: float | int = 0.0
    attention_dropout: float | int = 0.0
    layer_norm_eps: float | int = 1e-6
    initializer_range: float | int = 0.02

    def validate_architecture(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"denoiser hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )


@strict
class DualDenoisingConfig(PreTrainedConfig):
    r"""A Dual Denoising model: the 3D encoder, the PointDAE decoder, the feature denoiser and (optionally) the
    teacher's frozen text tower, so that a saved model is self-contained for zero-shot use.

    Args:
        point_config: `DualDenoisingPointConfig` (or dict).
        denoiser_config: `DualDenoisingDenoiserConfig` (or dict).
        text_config: the teacher's `CLIPTextConfig` (or dict); `None` for a model that has not met a teacher yet.
        objective: `"dual_denoising"` (the method) or `"contrastive"` (the direct-alignment ULIP baseline).
        embed_dim: D, the teacher's embedding size (CLIP projection dim).
        feature_target: what the denoiser (and the contrastive head) learns to produce: `"image"`, `"text"` or
            `"image+text"`. The contrastive objective does not read it: ULIP's loss aligns with every teacher
            embedding the batch carries (image and text).
        point_noise_max_sigma: s; point noise sigma_t rises linearly from 0 to s over `point_noise_steps` steps.
        point_noise_steps: T, the number of point-noise levels.
        point_noise_clean_prob: share of the training clouds drawn at t = 0 (clean) instead of t ~ U{0..T-1}, so that
            the encoder also trains on what it sees at test time (docs/design.md, "train/test mismatch").
        point_noise_augmentation: contrastive objective only: train on `x + sigma_t * eps` with t drawn as PointDAE
            draws it (the same sigma distribution), off in eval mode. The control of docs/design.md, "where the
            robustness comes from": direct alignment trained on the method's point noise. False is plain ULIP.
        inference_point_noise_level: t_in; 0 feeds the clean cloud at test time, > 0 adds point noise at that level
            (one draw per chain): randomized smoothing, for the contrastive baseline too (K noisy copies).
        purification_rounds: R; > 0 purifies the input R times with PointDAE before encoding it (add point noise at
            `purification_noise_level`, keep the decoder's clean patches; `DualDenoisingModel.purify_points`).
        purification_noise_level: the point-noise level t of each purification round.
        purification_keep_input: with purification, also encode the cloud as given and average the two normalised
            embeddings (the purified cloud's and the input's): the input keeps its details, the rebuild its
            robustness (docs/results.md, the robustness table).
        orientation_head: carry a small head that predicts which of the 24 axis-aligned rotations turns a cloud
            upright (`DualDenoisingModel.get_orientation_logits`); it is fitted after pretraining on the frozen encoder
            (`training.fit_orientation_head`) and read by `up_axis="auto"` (docs/design.md section 14).
        orientation_confidence_weight: w of the rule `up_axis="auto"` applies with a head: of the 24 orientations o
            keep the one maximising `log p_head(o | x) + w * log max_c softmax(logits of the cloud turned by o)`
            (chosen on validation clouds by `scripts/fit_orientation_head.py`).
        orientation_identity_prior: b of the same rule: added to the score of the cloud as given, so that `"auto"`
            turns a cloud only when another orientation scores more than b higher (0 = no preference; chosen with w on
            validation clouds, upright and turned, by `scripts/fit_orientation_head.py`; `"pca"` does not apply it).
        orientation_keep_threshold: tau of the same rule: a cloud whose orientation head gives "already upright"
            (orientation 0) a probability of at least tau is kept as given (1.0 = never by this; chosen with w and b).
        mask_ratio: Point-MAE masking of groups during pretraining (0 = off: the paper denoises instead).
        reconstruction_loss: `"chamfer_l2"` or `"chamfer_l1"`.
        feature_num_train_timesteps, feature_beta_schedule, feature_prediction_type: the feature DDPM (diffusers names).
        feature_log_snr_shift: added to log SNR(tau) = log(abar / (1 - abar)) of the whole feature schedule, in
            training and in DDIM sampling alike (Hoogeboom et al. 2023, "simple diffusion"). Negative is noisier. A
            shift of 2 log b is the same as scaling z_0 by b with the feature loss divided by b^2; a D-dimensional
            target stays readable from z_tau at D times the per-coordinate SNR, so -log D pulls the readable range
            back to that of a scalar (0 = the unshifted schedule).
        feature_timestep_sampling: how training draws tau: `"uniform"` on {0..T_f-1}, or `"logit_normal"`:
            tau = round((T_f - 1) * sigmoid(m + s * n)), n ~ N(0, 1) (SD3; diffusers'
            `compute_density_for_timestep_sampling`).
        feature_logit_mean, feature_logit_std: m and s of the logit-normal draw.
        feature_timestep_max_prob: p; a share p of the training clouds is drawn at tau = T_f - 1 instead, the pure
            noise that S = 1 inference starts from (a mixture with the distribution above; 0 = off).
        feature_timestep_stratified: stratify the draws across the batch (one per quantile bin of the distribution,
            in a random order), so every batch covers the whole range.
        num_noise_samples: K, parallel chains at inference (default of `get_point_features`).
        num_inference_steps: S, deterministic DDIM steps per chain (1 = one x0 prediction from pure noise). The
            defaults K = 1, S = 1 are the cheapest within 0.5 points of the best of K in {1, 4, 8} x S in
            {1, 2, 5, 10} on the working SynthShapes model (benchmarks/README.md).
        denoiser_context_grad_scale: gamma, the scale of the feature loss's gradient into the point tokens the
            denoiser reads: 0 is the paper's stop-gradient, 1 the full gradient (docs/design.md, "context gradient").
        lambda_rec, lambda_feat: loss weights.
        feature_contrastive_weight: lambda_nce, the weight of an auxiliary symmetric InfoNCE between the denoiser's x0
            estimate (normalised) and the batch's feature targets, added to the method's loss; 0 is the paper's
            objective (MSE only). A departure measured in docs/design.md section 12: it speeds learning at the
            baseline's budget (the x0 estimate gets a class-discriminative gradient at every tau, not only where
            z_tau is unreadable).
        contrastive_head_weight: Dual Denoising only: > 0 adds ULIP's contrastive head on the encoder (pooled
            `[CLS ; max]` -> linear to D) trained with this weight times its symmetric InfoNCE against the feature
            targets, beside PointDAE and the denoiser (CoCa's and ReCon's split: a contrastive embedding for open-
            vocabulary transfer next to the generative branch; docs/open-set.md). 0: no head (the paper's model).
        zero_shot_readout: where `get_point_features` reads the embedding: `"denoiser"` (the x0 estimate),
            `"head"` (the contrastive head; needs `contrastive_head_weight` > 0) or `"fusion"` (both, weighed by
            `readout_fusion_weight`).
        readout_fusion_weight: the head's share in `"fusion"`: `normalize(w * head + (1 - w) * denoiser)`, each part
            normalised first (chosen on seen validation shapes; docs/open-set.md).
        denoiser_start_timestep: None starts every chain from pure noise at T_f - 1 (the paper); t* starts it from the
            contrastive head's embedding noised to t* (SDEdit, arXiv 2108.01073): small t* keeps the head's answer,
            large t* hands more of it to the denoiser. Needs the head.
        logit_scale_init_value: log of the zero-shot logit scale (CLIP's 1/0.07) when no teacher provides one.
        shared_text_weights: set only on the models shipped inside the package, which store the teacher's frozen text
            tower once: the name of a file in `shared/` beside the model folder (content-addressed,
            `text-model-<sha256>.safetensors`) that holds this model's text tower. `from_pretrained` reads it and
            clears the field, so a loaded model is whole and `save_pretrained` writes the whole tower (None: the tower
            is in the model's own weights, as in every saved model).
    """

    model_type = "dual_denoising"
    sub_configs_defaults = {
        "point_config": DualDenoisingPointConfig,
        "denoiser_config": DualDenoisingDenoiserConfig,
        "text_config": SubConfigSpec(config_class=CLIPTextConfig, optional=True),
    }

    point_config: dict | DualDenoisingPointConfig | None = None
    denoiser_config: dict | DualDenoisingDenoiserConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    objective: str = "dual_denoising"
    embed_dim: int = 512
    feature_target: str = "image"
    point_noise_max_sigma: float | int = 0.08
    point_noise_steps: int = 1000
    point_noise_clean_prob: float | int = 0.0
    point_noise_augmentation: bool = False
    inference_point_noise_level: int = 0
    purification_rounds: int = 0
    purification_noise_level: int = 250
    purification_keep_input: bool = False
    orientation_head: bool = False
    orientation_confidence_weight: float | int = 8.0
    orientation_identity_prior: float | int = 0.0
    orientation_keep_threshold: float | int = 1.0
    mask_ratio: float | int = 0.0
    reconstruction_loss: str = "chamfer_l2"
    feature_num_train_timesteps: int = 1000
    feature_beta_schedule: str = "squaredcos_cap_v2"
    feature_prediction_type: str = "sample"
    feature_log_snr_shift: float | int = 0.0
    feature_timestep_sampling: str = "uniform"
    feature_logit_mean: float | int = 0.0
    feature_logit_std: float | int = 1.0
    feature_timestep_max_prob: float | int = 0.0
    feature_timestep_stratified: bool = False
    num_noise_samples: int = 1
    num_inference_steps: int = 1
    denoiser_context_grad_scale: float | int = 0.0
    lambda_rec: float | int = 1.0
    lambda_feat: float | int = 1.0
    feature_contrastive_weight: float | int = 0.0
    contrastive_head_weight: float | int = 0.0
    zero_shot_readout: str = "denoiser"
    readout_fusion_weight: float | int = 0.5
    denoiser_start_timestep: int | None = None
    logit_scale_init_value: float | int = 2.6592
    shared_text_weights: str | None = None

    def __post_init__(self, **kwargs):
        # configs saved before gamma existed carry the boolean `denoiser_stop_gradient`: True is gamma = 0
        legacy = kwargs.pop("denoiser_stop_gradient", None)
        if legacy is not None:
            self.denoiser_context_grad_scale = 0.0 if legacy else 1.0
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        choices = {
            "objective": OBJECTIVES,
            "feature_target": ("image", "text", "image+text"),
            "reconstruction_loss": ("chamfer_l2", "chamfer_l1"),
            "feature_beta_schedule": ("squaredcos_cap_v2", "linear"),
            "feature_prediction_type": ("sample", "epsilon"),
            "feature_timestep_sampling": TIMESTEP_SAMPLINGS,
            "zero_shot_readout": READOUTS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        num_tokens = self.denoiser_config.num_feature_tokens
        if self.embed_dim % num_tokens:
            raise ValueError(
                f"embed_dim ({self.embed_dim}) must be divisible by denoiser_config.num_feature_tokens ({num_tokens})"
            )
        if not 0 <= self.inference_point_noise_level < self.point_noise_steps:
            raise ValueError(
                f"inference_point_noise_level must be in [0, point_noise_steps={self.point_noise_steps}); "
                f"got {self.inference_point_noise_level}"
            )
        for name in ("point_noise_clean_prob", "feature_timestep_max_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability, in [0, 1]; got {getattr(self, name)}")
        if self.feature_logit_std <= 0:
            raise ValueError(f"feature_logit_std must be > 0; got {self.feature_logit_std}")
        if self.feature_contrastive_weight < 0:
            raise ValueError(
                f"feature_contrastive_weight must be >= 0 (0 = the paper's MSE only); got "
                f"{self.feature_contrastive_weight}"
            )
        if self.denoiser_context_grad_scale < 0:
            raise ValueError(
                f"denoiser_context_grad_scale (gamma) must be >= 0 (0 = stop-gradient); got "
                f"{self.denoiser_context_grad_scale}"
            )
        if self.purification_rounds < 0 or not 0 <= self.purification_noise_level < self.point_noise_steps:
            raise ValueError(
                f"purification_rounds must be >= 0 and purification_noise_level in [0, {self.point_noise_steps}); got "
                f"{self.purification_rounds} and {self.purification_noise_level}"
            )
        if self.purification_rounds and self.objective != "dual_denoising":
            raise ValueError("purification_rounds needs the PointDAE decoder, which only objective='dual_denoising' has")
        if not 0 < self.orientation_keep_threshold <= 1:
            raise ValueError(f"orientation_keep_threshold is a probability in (0, 1] (1 = off); got "
                             f"{self.orientation_keep_threshold}")
        if self.orientation_identity_prior < 0:
            raise ValueError(f"orientation_identity_prior must be >= 0 (0 = no preference for the cloud as given); "
                             f"got {self.orientation_identity_prior}")
        if self.contrastive_head_weight < 0 or not 0 <= self.readout_fusion_weight <= 1:
            raise ValueError(f"contrastive_head_weight must be >= 0 and readout_fusion_weight in [0, 1]; got "
                             f"{self.contrastive_head_weight} and {self.readout_fusion_weight}")
        uses_head = self.zero_shot_readout != "denoiser" or self.denoiser_start_timestep is not None
        if self.objective == "dual_denoising" and uses_head and not self.contrastive_head_weight:
            raise ValueError(f"zero_shot_readout={self.zero_shot_readout!r} and denoiser_start_timestep="
                             f"{self.denoiser_start_timestep} read the contrastive head: set contrastive_head_weight > 0 "
                             "(and train it), or use zero_shot_readout='denoiser' with denoiser_start_timestep=None")
        start = self.denoiser_start_timestep
        if start is not None and not 0 <= start < self.feature_num_train_timesteps:
            raise ValueError(f"denoiser_start_timestep must be None or in [0, {self.feature_num_train_timesteps}); "
                             f"got {start}")
        if not 0 <= self.mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in [0, 1); got {self.mask_ratio}")
        if self.num_noise_samples < 1 or not 1 <= self.num_inference_steps <= self.feature_num_train_timesteps:
            raise ValueError(
                "num_noise_samples must be >= 1 and num_inference_steps in [1, feature_num_train_timesteps]; got "
                f"{self.num_noise_samples} and {self.num_inference_steps}"
            )
        if self.text_config is not None and self.text_config.projection_dim != self.embed_dim:
            raise ValueError(
                f"embed_dim ({self.embed_dim}) must equal the text tower's projection_dim "
                f"({self.text_config.projection_dim})"
            )

    # A saved model folder lists its pipeline under `custom_pipelines`: that is how `trust_remote_code=True` users
    # get it. But transformers' `pipeline()` then demands trust_remote_code even where this package is installed and
    # has registered the task itself. So the entry is saved as is, and hidden while installed code provides the task.
    @property
    def custom_pipelines(self) -> dict:
        from transformers.pipelines import PIPELINE_REGISTRY

        saved = self.__dict__.get("_custom_pipelines", {})
        return {task: spec for task, spec in saved.items() if task not in PIPELINE_REGISTRY.supported_tasks}

    @custom_pipelines.setter
    def custom_pipelines(self, value: dict | None) -> None:
        self.__dict__["_custom_pipelines"] = dict(value or {})

    def to_dict(self) -> dict:
        output = super().to_dict()
        saved = output.pop("_custom_pipelines", None)
        if saved:
            # the task's `default` names a model of the machine that saved it (the package's shipped model): leave it
            # out, it would mean nothing (or a wrong URL) anywhere else
            output["custom_pipelines"] = {
                task: {k: v for k, v in spec.items() if k != "default"} for task, spec in saved.items()
            }
        return output


__all__ = ["DualDenoisingConfig", "DualDenoisingPointConfig", "DualDenoisingDenoiserConfig"]

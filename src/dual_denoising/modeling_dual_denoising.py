"""Dual Denoising (Luo, Qu, Gao, arXiv 2407.00905): robust 3D representations distilled from CLIP.

Read top to bottom as the data flows (docs/design.md gives every choice and departure):

    points (B, N, 3) --FPS on the clean cloud--> G centres --kNN--> patches (B, G, k, 3)
      --mini-PointNet--> tokens (B, G, W) --encoder (L_e blocks)--> point tokens of every block
        upper branch: PointDAE decoder (L_d blocks) -> clean patches, Chamfer loss
        lower branch: feature denoiser (L_f blocks, cross-attention to the point tokens) -> CLIP feature, MSE loss
    inference: encoder once, K denoising chains in one batch, each L2-normalised, averaged, normalised again.

The baseline (`objective="contrastive"`, ULIP's direct alignment) shares the tokenizer and encoder. The two noise
schedules (PointDAE's and the feature denoiser's DDPM/DDIM one) are in `scheduling_dual_denoising.py`.
Imports only torch, transformers and sibling modules, so `trust_remote_code=True` users get this file as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, CLIPTextModelWithProjection, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import load_state_dict
from transformers.utils import ModelOutput

from .configuration_dual_denoising import (
    READOUTS,
    DualDenoisingConfig,
    DualDenoisingDenoiserConfig,
    DualDenoisingPointConfig,
)
from .orientations import DualDenoisingOrientationHead
from .point_ops import chamfer_distance, check_points, farthest_point_sample, gather_points, group_points
from .scheduling_dual_denoising import (
    DualDenoisingFeatureScheduler,
    DualDenoisingPointNoiseSchedule,
    rand_tensor,
    randint_tensor,
    randn_tensor,
)

# beside the package's shipped model folders: the weights they share (`training.recipes.share_text_weights`)
SHARED_WEIGHTS_FOLDER = "shared"


# ----------------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class DualDenoisingModelOutput(ModelOutput):
    r"""Output of `DualDenoisingModel.forward`.

    Args:
        loss: `()`, the training loss: `lambda_rec * reconstruction_loss + lambda_feat * feature_loss` for Dual
            Denoising (`+ feature_contrastive_weight * contrastive_loss` when that weight is > 0), `contrastive_loss`
            for the baseline.
        reconstruction_loss: `()`, Chamfer distance between predicted and clean patches (PointDAE).
        feature_loss: `()`, MSE of the denoiser's prediction (x0 or noise) against its target.
        contrastive_loss: `()`, ULIP's symmetric InfoNCE against image and text embeddings (the baseline), or the
            method's auxiliary InfoNCE on its x0 estimate (when `feature_contrastive_weight` > 0; else None).
        head_loss: `()`, the method's contrastive head's InfoNCE against the feature targets (when
            `contrastive_head_weight` > 0; else None).
        point_embeds: `(B, D)`, L2-normalised 3D embedding: the denoiser's x0 estimate at the sampled timestep
            (Dual Denoising) or the projected pooled tokens (baseline). For inference use `get_point_features`.
        predicted_patches: `(B, G, k, 3)`, decoder output: clean patches relative to the noisy centres.
        target_patches: `(B, G, k, 3)`, the clean patches relative to the noisy centres (`P_0 + c_0 - c_t`).
        predicted_features: `(B, D)`, the denoiser's raw output (x0 or noise, `feature_prediction_type`).
        target_features: `(B, D)`, its target.
        noisy_points: `(B, N, C)`, the corrupted input x_t of the PointDAE branch.
        point_timesteps: `(B,)`, the point-noise level t of each cloud.
        feature_timesteps: `(B,)`, the feature-diffusion timestep tau of each cloud.
        center_indices: `(B, G)`, FPS indices of the patch centres (in the clean cloud).
        last_hidden_state: `(B, 1 + G', W)`, the last encoder block's tokens (`[CLS]` first; G' = visible groups).
        hidden_states: tuple of L_e tensors like `last_hidden_state`, one per encoder block.
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    feature_loss: torch.FloatTensor | None = None
    contrastive_loss: torch.FloatTensor | None = None
    head_loss: torch.FloatTensor | None = None
    point_embeds: torch.FloatTensor | None = None
    predicted_patches: torch.FloatTensor | None = None
    target_patches: torch.FloatTensor | None = None
    predicted_features: torch.FloatTensor | None = None
    target_features: torch.FloatTensor | None = None
    noisy_points: torch.FloatTensor | None = None
    point_timesteps: torch.LongTensor | None = None
    feature_timesteps: torch.LongTensor | None = None
    center_indices: torch.LongTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None

# ----------------------------------------------------------------------------------------------------------------------
# Layers (the noise schedules are in scheduling_dual_denoising.py)
# ----------------------------------------------------------------------------------------------------------------------
def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """`x` in the forward pass; its gradient times `scale` in the backward pass (0 = `x.detach()`, 1 = `x`)."""
    if scale == 1:
        return x
    if scale == 0:
        return x.detach()
    return x.detach() + scale * (x - x.detach())


class DualDenoisingDropPath(nn.Module):
    """Stochastic depth: drops the residual branch of whole samples with probability `drop_prob` in training."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class DualDenoisingPatchEmbedding(nn.Module):
    """Mini-PointNet of Point-BERT: one token per patch. in -> a -> b (shared MLP), max-pool, concat the pooled vector
    to every point (2b), -> c -> W, max-pool."""

    def __init__(self, config: DualDenoisingPointConfig):
        super().__init__()
        a, b, c = config.patch_embed_sizes
        self.first_mlp = nn.Sequential(nn.Linear(config.in_channels, a), nn.BatchNorm1d(a), nn.ReLU(), nn.Linear(a, b))
        self.second_mlp = nn.Sequential(
            nn.Linear(2 * b, c), nn.BatchNorm1d(c), nn.ReLU(), nn.Linear(c, config.hidden_size)
        )

    @staticmethod
    def _pointwise(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        # BatchNorm1d wants (n, C): flatten every point of every patch
        return mlp(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        features = self._pointwise(self.first_mlp, patches)  # (B, G, k, b)
        pooled = features.amax(dim=2, keepdim=True).expand_as(features)
        features = self._pointwise(self.second_mlp, torch.cat([pooled, features], dim=-1))  # (B, G, k, W)
        return features.amax(dim=2)  # (B, G, W)


class DualDenoisingPositionEmbedding(nn.Module):
    """MLP(3 -> hidden -> W) of a patch centre."""

    def __init__(self, hidden: int, width: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, centers: torch.Tensor) -> torch.Tensor:
        return self.mlp(centers)


class DualDenoisingAttention(nn.Module):
    """Multi-head attention through `scaled_dot_product_attention`. Self-attention: `forward(x)`. Cross-attention:
    `project_key_value(context)` once, then `forward(x, key_value)` as often as needed (the point tokens' keys and
    values are computed once per cloud and reused by every chain and every sampling step)."""

    def __init__(self, width: int, num_heads: int, dropout: float, context_width: int | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(context_width or width, width)
        self.v_proj = nn.Linear(context_width or width, width)
        self.out_proj = nn.Linear(width, width)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, L, W) -> (B, H, L, W/H)

    def project_key_value(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._heads(self.k_proj(context)), self._heads(self.v_proj(context))

    def forward(self, x: torch.Tensor, key_value: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        key, value = key_value if key_value is not None else self.project_key_value(x)
        query, dropout = self._heads(self.q_proj(x)), self.dropout if self.training else 0.0
        if query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16):
            # PyTorch's CPU flash-attention kernel is 3-4x slower in bfloat16 than in float32 (forward and
            # backward; benchmarks/README.md), so on CPU attention runs in float32 whatever the autocast dtype.
            with torch.autocast("cpu", enabled=False):
                out = F.scaled_dot_product_attention(query.float(), key.float(), value.float(), dropout_p=dropout)
            out = out.to(query.dtype)
        else:
            out = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class DualDenoisingMLP(nn.Module):
    def __init__(self, width: int, mlp_ratio: float):
        super().__init__()
        self.fc1 = nn.Linear(width, int(width * mlp_ratio))
        self.fc2 = nn.Linear(int(width * mlp_ratio), width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class DualDenoisingEncoderLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block (self-attention, MLP), used by the encoder and the PointDAE decoder."""

    def __init__(self, config: DualDenoisingPointConfig, drop_path: float):
        super().__init__()
        width = config.hidden_size
        self.norm1 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.attn = DualDenoisingAttention(width, config.num_attention_heads, config.attention_dropout)
        self.norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.mlp = DualDenoisingMLP(width, config.mlp_ratio)
        self.drop_path = DualDenoisingDropPath(drop_path)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.drop_path(self.attn(self.norm1(hidden_states)))
        return hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))


def _drop_path_rates(rate: float, num_layers: int) -> list[float]:
    return [rate * i / max(num_layers - 1, 1) for i in range(num_layers)]


class DualDenoisingPointEncoder(nn.Module):
    """`[CLS]` + G patch tokens through L_e blocks; the position embedding is added before every block (Point-BERT).
    Returns the output of every block: the feature denoiser reads them."""

    def __init__(self, config: DualDenoisingPointConfig):
        super().__init__()
        width = config.hidden_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.cls_position = nn.Parameter(torch.zeros(1, 1, width))
        rates = _drop_path_rates(config.drop_path_rate, config.num_hidden_layers)
        self.layers = nn.ModuleList(DualDenoisingEncoderLayer(config, rate) for rate in rates)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        batch_size = tokens.shape[0]
        hidden_states = torch.cat([self.cls_token.expand(batch_size, -1, -1), tokens], dim=1)  # (B, 1 + G, W)
        positions = torch.cat([self.cls_position.expand(batch_size, -1, -1), positions], dim=1)
        all_hidden_states = []
        for layer in self.layers:
            hidden_states = layer(hidden_states + positions)
            all_hidden_states.append(hidden_states)
        return tuple(all_hidden_states)


class DualDenoisingPointDecoder(nn.Module):
    """PointDAE decoder: L_d blocks (no cross-attention link, paper Fig. 4), then a linear head to k x 3 per token."""

    def __init__(self, config: DualDenoisingPointConfig):
        super().__init__()
        width = config.hidden_size
        self.input_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.position_embedding = DualDenoisingPositionEmbedding(config.position_embed_size, width)
        rates = _drop_path_rates(config.drop_path_rate, config.num_decoder_layers)
        self.layers = nn.ModuleList(DualDenoisingEncoderLayer(config, rate) for rate in rates)
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.head = nn.Linear(width, config.group_size * 3)

    def forward(self, tokens: torch.Tensor, centers: torch.Tensor, visible: torch.Tensor | None) -> torch.Tensor:
        """tokens `(B, G', W)` of the visible groups, centers `(B, G, 3)` (noisy), visible `(B, G)` bool or None."""
        tokens = self.input_norm(tokens)
        if visible is not None:  # Point-MAE: mask tokens stand in for the hidden groups
            full = self.mask_token.to(tokens.dtype).expand(*visible.shape, -1).clone()
            full[visible] = tokens.reshape(-1, tokens.shape[-1])
            tokens = full
        positions = self.position_embedding(centers)
        for layer in self.layers:
            tokens = layer(tokens + positions)
        batch_size, num_groups, _ = tokens.shape
        return self.head(self.norm(tokens)).reshape(batch_size, num_groups, -1, 3)  # (B, G, k, 3)


class DualDenoisingTimestepEmbedding(nn.Module):
    """Sinusoidal embedding of the diffusion timestep, then MLP(W -> W -> W)."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        half = self.width // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=timesteps.device) / half)
        angles = timesteps.float()[:, None] * freqs[None]
        embedding = torch.cat([angles.cos(), angles.sin()], dim=-1)
        if self.width % 2:
            embedding = F.pad(embedding, (0, 1))
        return self.mlp(embedding.to(self.mlp[0].weight.dtype))


class DualDenoisingDenoiserLayer(GradientCheckpointingLayer):
    """Feature-denoiser block (paper, Fig. 4 right): self-attention over the feature tokens, cross-attention with
    feature tokens as Q and point tokens as K/V, MLP; pre-norm residuals."""

    def __init__(self, config: DualDenoisingDenoiserConfig, point_width: int, drop_path: float):
        super().__init__()
        width, eps = config.hidden_size, config.layer_norm_eps
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.self_attn = DualDenoisingAttention(width, config.num_attention_heads, config.attention_dropout)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.context_norm = nn.LayerNorm(point_width, eps=eps)
        self.cross_attn = DualDenoisingAttention(
            width, config.num_attention_heads, config.attention_dropout, context_width=point_width
        )
        self.norm3 = nn.LayerNorm(width, eps=eps)
        self.mlp = DualDenoisingMLP(width, config.mlp_ratio)
        self.drop_path = DualDenoisingDropPath(drop_path)

    def project_context(self, point_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values `(B, H, 1 + G, W/H)` of one cloud's point tokens: computed once, reused by every chain."""
        return self.cross_attn.project_key_value(self.context_norm(point_tokens))

    def forward(self, hidden_states: torch.Tensor, key_value: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """hidden_states `(B * K, M, W)`: K chains per cloud; key_value from `project_context`, `(B, H, L, W/H)`."""
        hidden_states = hidden_states + self.drop_path(self.self_attn(self.norm1(hidden_states)))
        # Cross-attention treats every query independently, so the K chains of a cloud are folded into the query
        # length: (B * K, M, W) -> (B, K * M, W). The point tokens' keys and values are neither copied nor expanded.
        batch_size = key_value[0].shape[0]
        chains, num_tokens, width = hidden_states.shape
        queries = self.norm2(hidden_states).reshape(batch_size, -1, width)
        cross = self.cross_attn(queries, key_value).reshape(chains, num_tokens, width)
        hidden_states = hidden_states + self.drop_path(cross)
        return hidden_states + self.drop_path(self.mlp(self.norm3(hidden_states)))


class DualDenoisingFeatureDenoiser(nn.Module):
    """Turns a noisy feature z_tau (D) into the denoised estimate, guided by the point tokens. z_tau is cut into M
    tokens of D / M values, each projected to the denoiser width, plus a learned token embedding and the timestep
    embedding. Block j reads encoder block m(j), spread evenly over the encoder."""

    def __init__(self, config: DualDenoisingDenoiserConfig, embed_dim: int, point_width: int, num_encoder_layers: int):
        super().__init__()
        width, num_layers = config.hidden_size, config.num_hidden_layers
        self.num_tokens = config.num_feature_tokens
        self.token_dim = embed_dim // self.num_tokens
        self.input_proj = nn.Linear(self.token_dim, width)
        self.token_embedding = nn.Parameter(torch.zeros(1, self.num_tokens, width))
        self.timestep_embedding = DualDenoisingTimestepEmbedding(width)
        rates = _drop_path_rates(config.drop_path_rate, num_layers)
        self.layers = nn.ModuleList(DualDenoisingDenoiserLayer(config, point_width, rate) for rate in rates)
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.head = nn.Linear(width, self.token_dim)
        # m(j): the encoder block each denoiser block reads (m(j) = j when L_f = L_e)
        self.encoder_layer_map = [round((j + 1) * num_encoder_layers / num_layers) - 1 for j in range(num_layers)]

    def project_context(self, encoder_hidden_states: tuple[torch.Tensor, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [
            layer.project_context(encoder_hidden_states[m]) for layer, m in zip(self.layers, self.encoder_layer_map)
        ]

    def forward(
        self, sample: torch.Tensor, timesteps: torch.Tensor, context: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> torch.Tensor:
        """sample `(B * K, D)`, timesteps `(B * K,)`, context from `project_context` -> prediction `(B * K, D)`."""
        tokens = self.input_proj(sample.reshape(-1, self.num_tokens, self.token_dim))  # (B * K, M, W)
        hidden_states = tokens + self.token_embedding + self.timestep_embedding(timesteps)[:, None]
        for layer, key_value in zip(self.layers, context):
            hidden_states = layer(hidden_states, key_value)
        return self.head(self.norm(hidden_states)).reshape(sample.shape)


# ----------------------------------------------------------------------------------------------------------------------
# Pretrained base
# ----------------------------------------------------------------------------------------------------------------------
class DualDenoisingPreTrainedModel(PreTrainedModel):
    config: DualDenoisingConfig
    config_class = DualDenoisingConfig
    base_model_prefix = "dual_denoising"
    main_input_name = "points"
    input_modalities = ("point_cloud", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["DualDenoisingEncoderLayer", "DualDenoisingDenoiserLayer", "CLIPEncoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.point_config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm1d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm1d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, DualDenoisingPointEncoder):
            init.trunc_normal_(module.cls_token, std=std)
            init.trunc_normal_(module.cls_position, std=std)
        elif isinstance(module, DualDenoisingPointDecoder):
            init.trunc_normal_(module.mask_token, std=std)
        elif isinstance(module, DualDenoisingFeatureDenoiser):
            init.trunc_normal_(module.token_embedding, std=std)
        elif isinstance(module, DualDenoisingModel):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)


# ----------------------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------------------
class DualDenoisingModel(DualDenoisingPreTrainedModel):
    """Dual Denoising 3D encoder with its PointDAE decoder, feature denoiser and the teacher's frozen text tower.

    `forward` computes the pretraining losses; `get_point_features` is parallel noise inference (the 3D embedding in
    the teacher's space); `get_text_features` and `zero_shot_logits` classify zero-shot, like `CLIPModel`.
    """

    def __init__(self, config: DualDenoisingConfig):
        super().__init__(config)
        point_config = config.point_config
        width = point_config.hidden_size
        self.patch_embedding = DualDenoisingPatchEmbedding(point_config)
        self.position_embedding = DualDenoisingPositionEmbedding(point_config.position_embed_size, width)
        self.encoder = DualDenoisingPointEncoder(point_config)
        if config.objective == "dual_denoising":
            self.decoder = DualDenoisingPointDecoder(point_config)
            self.denoiser = DualDenoisingFeatureDenoiser(
                config.denoiser_config, config.embed_dim, width, point_config.num_hidden_layers
            )
        if config.objective == "contrastive" or config.contrastive_head_weight > 0:
            # ULIP's head: pooled [CLS ; max over groups] -> linear to D (the method's optional contrastive head)
            self.final_norm = nn.LayerNorm(width, eps=point_config.layer_norm_eps)
            self.projection = nn.Linear(2 * width, config.embed_dim)
        # optional: predicts the rotation that turns a cloud upright (`get_orientation_logits`)
        self.orientation_head = DualDenoisingOrientationHead(point_config) if config.orientation_head else None
        self.text_model = CLIPTextModelWithProjection(config.text_config) if config.text_config is not None else None
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        self.point_noise = DualDenoisingPointNoiseSchedule(config.point_noise_max_sigma, config.point_noise_steps)
        self.scheduler = DualDenoisingFeatureScheduler(config.feature_num_train_timesteps, config.feature_beta_schedule,
                                                       config.feature_prediction_type, config.feature_log_snr_shift)
        self.post_init()
        if config.shared_text_weights:  # the checkpoint leaves the text tower out: from_pretrained reads it
            self._keys_to_ignore_on_load_missing.add(r"^text_model\.")
        self._freeze_text_model()

    def _freeze_text_model(self) -> None:
        if self.text_model is not None:
            self.text_model.requires_grad_(False)  # the teacher's text tower stays frozen

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if name := model.config.shared_text_weights:  # a shipped model: the tower is in `shared/` beside its folder
            path = Path(pretrained_model_name_or_path).expanduser().resolve().parent / SHARED_WEIGHTS_FOLDER / name
            if not path.is_file():
                raise FileNotFoundError(f"{pretrained_model_name_or_path}: the text tower the shipped models share "
                                        f"({path}) is missing; load the model from the package's pretrained/ folder, "
                                        "or copy it with save_pretrained (which writes the whole model)")
            model.text_model.load_state_dict(load_state_dict(path))
            model.config.shared_text_weights = None  # whole from here on: save_pretrained writes the tower
        model._freeze_text_model()  # loading re-creates the parameters, which then require grad again
        return loaded

    # -- construction from a teacher ---------------------------------------------------------------------------------
    @classmethod
    def from_teacher(
        cls, teacher: str | CLIPModel, config: DualDenoisingConfig | str | None = None, **config_overrides
    ) -> "DualDenoisingModel":
        """A new model whose frozen text tower, embedding size D and logit scale come from a CLIP teacher.

        Args:
            teacher: a `CLIPModel` or a folder / Hub id it loads from (e.g. `openai/clip-vit-base-patch16`).
            config: a `DualDenoisingConfig`, a folder holding one (e.g. `hub_configs/small`), or None for defaults.
            config_overrides: top-level config fields to set, e.g. `objective="contrastive"`.
        """
        clip = teacher if isinstance(teacher, CLIPModel) else CLIPModel.from_pretrained(teacher, dtype=torch.float32)
        if config is None:
            config = DualDenoisingConfig()
        elif not isinstance(config, DualDenoisingConfig):
            config = DualDenoisingConfig.from_pretrained(config)
        config_dict = config.to_dict()
        config_dict.update(config_overrides)
        config_dict["text_config"] = clip.config.text_config.to_dict()
        config_dict["text_config"]["projection_dim"] = clip.config.projection_dim
        config_dict["embed_dim"] = clip.config.projection_dim
        config_dict["logit_scale_init_value"] = clip.logit_scale.item()
        config_dict.pop("model_type", None)
        model = cls(DualDenoisingConfig(**config_dict))
        model.text_model.text_model.load_state_dict(clip.text_model.state_dict())
        model.text_model.text_projection.load_state_dict(clip.text_projection.state_dict())
        return model

    def train(self, mode: bool = True):
        super().train(mode)
        if self.text_model is not None:
            self.text_model.eval()  # frozen teacher: no dropout, whatever the mode of the rest
        return self

    # -- tokenisation ------------------------------------------------------------------------------------------------
    def _check_input(self, points: torch.Tensor) -> None:
        point_config = self.config.point_config
        needed = max(point_config.group_size, point_config.num_groups)
        check_points(points, "points", min_points=needed)
        if points.shape[-1] != point_config.in_channels:
            raise ValueError(f"this model takes {point_config.in_channels} channels per point (in_channels); got "
                             f"points of shape {tuple(points.shape)}")

    def _tokenize(self, points: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch tokens `(B, G, W)` and position embeddings of the centres `(B, G, W)`."""
        patches, _ = group_points(points, centers, self.config.point_config.group_size)  # (B, G, k, C)
        return self.patch_embedding(patches), self.position_embedding(centers)

    def encode(self, points: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Clean tokenisation and the encoder: every block's hidden states `(B, 1 + G, W)`."""
        self._check_input(points)
        center_indices = farthest_point_sample(points, self.config.point_config.num_groups)
        centers = gather_points(points[..., :3], center_indices)
        tokens, positions = self._tokenize(points, centers)
        return self.encoder(tokens, positions)

    def _pool_and_project(self, last_hidden_state: torch.Tensor) -> torch.Tensor:
        """Baseline head: `[CLS ; max over groups]` -> linear -> D (not normalised)."""
        hidden = self.final_norm(last_hidden_state)
        return self.projection(torch.cat([hidden[:, 0], hidden[:, 1:].amax(dim=1)], dim=-1))

    # -- training ----------------------------------------------------------------------------------------------------
    def forward(
        self,
        points: torch.Tensor,
        image_embeds: torch.Tensor | None = None,
        text_embeds: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> DualDenoisingModelOutput | tuple:
        """Pretraining losses.

        Args:
            points: `(B, N, C)` clouds on the unit sphere.
            image_embeds: `(B, D)` or `(B, V, D)` frozen-CLIP embeddings of rendered views (one view is drawn per
                step when there are several).
            text_embeds: `(B, D)` or `(B, T, D)` frozen-CLIP embeddings of captions (one drawn per step).
            generator: optional source of every random draw of the step (timesteps, noise, views, masks).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        self._check_input(points)
        if self.config.objective == "contrastive":
            output = self._forward_contrastive(points, image_embeds, text_embeds, generator)
        else:
            output = self._forward_dual_denoising(points, image_embeds, text_embeds, generator)
        if not output_hidden_states:
            output.hidden_states = None
        return output if return_dict else output.to_tuple()

    def sample_feature_timesteps(
        self, batch_size: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """The feature-diffusion timesteps tau `(B,)` training draws: the config's `feature_timestep_*` law."""
        config = self.config
        return self.scheduler.sample_timesteps(
            batch_size, sampling=config.feature_timestep_sampling, logit_mean=config.feature_logit_mean,
            logit_std=config.feature_logit_std, max_prob=config.feature_timestep_max_prob,
            stratified=config.feature_timestep_stratified, generator=generator, device=device,
        )

    def _point_timesteps(self, batch_size: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """PointDAE's noise levels `(B,)`: t ~ U{0..T-1}, a share `point_noise_clean_prob` of the clouds at t = 0."""
        t = randint_tensor(self.config.point_noise_steps, (batch_size,), like, generator)
        if self.config.point_noise_clean_prob > 0:
            clean = rand_tensor(batch_size, like, generator) < self.config.point_noise_clean_prob
            t = torch.where(clean, torch.zeros_like(t), t)
        return t

    def _pick(self, embeds: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """`(B, D)` as is; `(B, V, D)` -> one of the V rows per sample, drawn at random."""
        if embeds.dim() == 2:
            return embeds
        choice = randint_tensor(embeds.shape[1], (embeds.shape[0],), embeds, generator)
        return embeds[torch.arange(embeds.shape[0], device=embeds.device), choice]

    def _feature_target(self, image_embeds, text_embeds, generator) -> torch.Tensor:
        """z_0 = sqrt(D) * normalize(e), e the teacher embedding chosen by `feature_target`."""
        target = self.config.feature_target
        if "image" in target and image_embeds is None or "text" in target and text_embeds is None:
            raise ValueError(f"feature_target={target!r} needs {target.replace('+', ' and ')} embeddings: pass "
                             "image_embeds / text_embeds (precompute them with `dual-denoising precompute-features`)")
        parts = []
        if "image" in target:
            parts.append(F.normalize(self._pick(image_embeds, generator).float(), dim=-1))
        if "text" in target:
            parts.append(F.normalize(self._pick(text_embeds, generator).float(), dim=-1))
        embedding = F.normalize(torch.stack(parts).mean(0), dim=-1)
        return math.sqrt(self.config.embed_dim) * embedding

    def _forward_dual_denoising(self, points, image_embeds, text_embeds, generator) -> DualDenoisingModelOutput:
        config, point_config = self.config, self.config.point_config
        batch_size = points.shape[0]
        # (1) Upper branch, corruption (paper Fig. 1): x_t = x_0 + sigma_t eps, t ~ U{0..T-1} per cloud
        t = self._point_timesteps(batch_size, points, generator)
        noisy = self.point_noise.add_noise(points, randn_tensor(points[..., :3].shape, points, generator), t)
        # (2) Tokenisation (paper Fig. 3): FPS on the clean cloud; clean and noisy centres at the same indices;
        # kNN around c_t in x_t (noisy patches) and around c_0 in x_0 (clean patches)
        center_indices = farthest_point_sample(points, point_config.num_groups)  # (B, G)
        clean_centers = gather_points(points[..., :3], center_indices)  # (B, G, 3)
        noisy_centers = gather_points(noisy[..., :3], center_indices)
        tokens, positions = self._tokenize(noisy, noisy_centers)  # (B, G, W) each
        clean_patches, _ = group_points(points[..., :3], clean_centers, point_config.group_size)  # (B, G, k, 3)
        target_patches = clean_patches + (clean_centers - noisy_centers)[:, :, None]  # P_0 + c_0 - c_t

        visible = None
        if config.mask_ratio > 0:  # Point-MAE: the encoder sees a random subset of the groups
            num_visible = point_config.num_groups - int(config.mask_ratio * point_config.num_groups)
            scores = rand_tensor((batch_size, point_config.num_groups), points, generator)
            keep = scores.argsort(dim=1)[:, :num_visible]
            visible = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, keep, True)
            tokens = tokens[visible].reshape(batch_size, num_visible, -1)
            positions = positions[visible].reshape(batch_size, num_visible, -1)
        hidden_states = self.encoder(tokens, positions)

        # (3) PointDAE decoder on the last block's group tokens: L_rec = Chamfer(P_hat, P_0 + c_0 - c_t)
        predicted_patches = self.decoder(hidden_states[-1][:, 1:], noisy_centers, visible)  # (B, G, k, 3)
        scored = ~visible if visible is not None else torch.ones_like(center_indices, dtype=torch.bool)
        reconstruction_loss = chamfer_distance(predicted_patches[scored].float(), target_patches[scored].float(),
                                               norm=config.reconstruction_loss.removeprefix("chamfer_"))

        # (4) Lower branch: DDPM over the teacher feature z_0 = sqrt(D) normalize(e), tau from the configured
        # distribution, z_tau = sqrt(abar_tau) z_0 + sqrt(1 - abar_tau) eps on the (shifted) schedule
        z0 = self._feature_target(image_embeds, text_embeds, generator)  # (B, D), float32
        noise = randn_tensor(z0.shape, z0, generator)
        tau = self.sample_feature_timesteps(batch_size, generator, z0.device)
        z_tau = self.scheduler.add_noise(z0, noise, tau)
        # (5) the denoiser cross-attends to the point tokens; the feature loss reaches them scaled by gamma
        gamma = config.denoiser_context_grad_scale
        context_states = tuple(scale_gradient(h, gamma) for h in hidden_states)
        context = self.denoiser.project_context(context_states)
        predicted = self.denoiser(z_tau.to(hidden_states[-1].dtype), tau, context).float()
        # (6) L_feat = || f(z_tau, tau, tokens) - z_0 ||^2 (x0 prediction), L = lambda_rec L_rec + lambda_feat L_feat
        target = z0 if config.feature_prediction_type == "sample" else noise
        feature_loss = F.mse_loss(predicted, target)
        z0_estimate = self.scheduler.predict_original(predicted, tau, z_tau)
        point_embeds = F.normalize(z0_estimate, dim=-1)
        loss = config.lambda_rec * reconstruction_loss + config.lambda_feat * feature_loss
        # (7) optional departure: + lambda_nce InfoNCE(normalize(z0_hat), normalize(z0)) over the batch
        contrastive_loss = None
        if config.feature_contrastive_weight > 0:
            contrastive_loss = self._info_nce(point_embeds, z0)
            loss = loss + config.feature_contrastive_weight * contrastive_loss
        # (8) optional contrastive head (open-vocabulary transfer): + lambda_head InfoNCE(head(tokens), z0)
        head_loss = None
        if config.contrastive_head_weight > 0:
            head_loss = self._info_nce(F.normalize(self._pool_and_project(hidden_states[-1]).float(), dim=-1), z0)
            loss = loss + config.contrastive_head_weight * head_loss

        return DualDenoisingModelOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            feature_loss=feature_loss,
            contrastive_loss=contrastive_loss,
            head_loss=head_loss,
            point_embeds=point_embeds,
            predicted_patches=predicted_patches,
            target_patches=target_patches,
            predicted_features=predicted,
            target_features=target,
            noisy_points=noisy,
            point_timesteps=t,
            feature_timesteps=tau,
            center_indices=center_indices,
            last_hidden_state=hidden_states[-1],
            hidden_states=hidden_states,
        )

    def _info_nce(self, point_embeds: torch.Tensor, target_embeds: torch.Tensor) -> torch.Tensor:
        """CLIP's symmetric InfoNCE of `(B, D)` normalised 3D embeddings against `(B, D)` targets (normalised here),
        the batch's other rows the negatives, at the model's logit scale."""
        logits = self.logit_scale.exp() * point_embeds @ F.normalize(target_embeds.float(), dim=-1).T
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    def _forward_contrastive(self, points, image_embeds, text_embeds, generator) -> DualDenoisingModelOutput:
        """ULIP: clean input, pooled tokens projected to D, symmetric InfoNCE against image and text embeddings."""
        if image_embeds is None and text_embeds is None:
            raise ValueError("the contrastive objective needs image_embeds and/or text_embeds to align with")
        if self.training and self.config.point_noise_augmentation:  # the control: the method's point noise, x + sigma_t eps
            t = self._point_timesteps(points.shape[0], points, generator)
            points = self.point_noise.add_noise(points, randn_tensor(points[..., :3].shape, points, generator), t)
        hidden_states = self.encode(points)
        point_embeds = F.normalize(self._pool_and_project(hidden_states[-1]).float(), dim=-1)
        targets = [embeds for embeds in (text_embeds, image_embeds) if embeds is not None]
        losses = [self._info_nce(point_embeds, self._pick(embeds, generator)) for embeds in targets]
        loss = torch.stack(losses).sum()
        return DualDenoisingModelOutput(loss=loss, contrastive_loss=loss, point_embeds=point_embeds,
                                        last_hidden_state=hidden_states[-1], hidden_states=hidden_states)

    # -- inference ---------------------------------------------------------------------------------------------------
    def purify_points(self, points: torch.Tensor, noise_level: int, rounds: int = 1,
                      generator: torch.Generator | list[torch.Generator] | None = None) -> torch.Tensor:
        """PointDAE purification (PointDP's idea with the model's own denoiser): each round adds point noise at level
        `noise_level`, picks G centres by FPS on the noisy cloud and replaces the cloud by the decoder's clean patches
        around them, `(B, G * k, 3)`. Differentiable with respect to `points`; `generator` makes it repeatable."""
        if self.config.objective != "dual_denoising":
            raise ValueError("purification needs the PointDAE decoder: this model is the contrastive baseline")
        if self.config.point_config.in_channels != 3:
            raise ValueError("purification rebuilds xyz only; this model takes colour channels too")
        self._check_input(points)
        num_groups = self.config.point_config.num_groups
        for _ in range(rounds):
            t = torch.full((points.shape[0],), noise_level, dtype=torch.long, device=points.device)
            noisy = self.point_noise.add_noise(points, randn_tensor(points[..., :3].shape, points, generator), t)
            centers = gather_points(noisy, farthest_point_sample(noisy.detach(), num_groups))  # (B, G, 3)
            tokens, positions = self._tokenize(noisy, centers)
            patches = self.decoder(self.encoder(tokens, positions)[-1][:, 1:], centers, None)  # (B, G, k, 3)
            points = (centers[:, :, None] + patches).flatten(1, 2).to(points.dtype)
        return points

    def _noisy_copies(self, points: torch.Tensor, copies: int, level: int, generator) -> torch.Tensor:
        """`(B * copies, N, C)`: each cloud `copies` times, each copy with its own point noise at level `level`."""
        repeated = points.repeat_interleave(copies, dim=0)
        t = torch.full((repeated.shape[0],), level, dtype=torch.long, device=points.device)
        return self.point_noise.add_noise(repeated, randn_tensor(repeated[..., :3].shape, points, generator), t)

    def get_point_features(
        self,
        points: torch.Tensor,
        num_noise_samples: int | None = None,
        num_inference_steps: int | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        inference_point_noise_level: int | None = None,
        purification_rounds: int | None = None,
        purification_noise_level: int | None = None,
        purification_keep_input: bool | None = None,
        readout: str | None = None,
        fusion_weight: float | None = None,
        start_timestep: int | None = None,
    ) -> torch.Tensor:
        """Parallel noise inference: the L2-normalised 3D embedding `(B, D)` in the teacher's space.

        The encoder runs once; the keys and values of the point tokens are computed once per cloud; K chains, each
        from its own z_T ~ N(0, I), run in one batch through S deterministic DDIM steps; each result is normalised,
        the K results are averaged and normalised again. Differentiable with respect to `points` (FPS and kNN
        indices are constants; gradients flow through the gathered coordinates).

        Args:
            points: `(B, N, C)` clouds on the unit sphere.
            num_noise_samples: K (default `config.num_noise_samples`).
            num_inference_steps: S (default `config.num_inference_steps`).
            generator: makes the result reproducible; a list of B generators (one per cloud) makes each cloud's result
                independent of the others in the batch.
            inference_point_noise_level: t_in (default `config.inference_point_noise_level`); > 0 adds point noise at
                that level, one draw per chain (the encoder then runs on B * K clouds): randomized smoothing. The
                contrastive baseline takes it too: K noisy copies, their normalised embeddings averaged.
            purification_rounds: R (default `config.purification_rounds`); > 0 first purifies the cloud R times with
                `purify_points` at `purification_noise_level` (default `config.purification_noise_level`).
            purification_keep_input: also embed the cloud as given and average (default: the config's).
            readout, fusion_weight, start_timestep: `"denoiser"`, `"head"` or `"fusion"`, the head's share in the
                fusion, and the SDEdit start t* (-1 = pure noise) (defaults: the config's `zero_shot_readout`,
                `readout_fusion_weight`, `denoiser_start_timestep`).
        """
        config = self.config
        self._check_input(points)
        rounds = purification_rounds if purification_rounds is not None else config.purification_rounds
        if rounds > 0:
            level = config.purification_noise_level if purification_noise_level is None else purification_noise_level
            purified = self.purify_points(points, level, rounds, generator)
            if config.purification_keep_input if purification_keep_input is None else purification_keep_input:
                given, rebuilt = (self.get_point_features(x, num_noise_samples, num_inference_steps, generator,
                                                          inference_point_noise_level, 0, readout=readout,
                                                          fusion_weight=fusion_weight, start_timestep=start_timestep)
                                  for x in (points, purified))
                return F.normalize(given + rebuilt, dim=-1)  # each embedding normalised, then their mean
            points = purified
        noise_level = inference_point_noise_level
        noise_level = config.inference_point_noise_level if noise_level is None else noise_level
        num_chains = num_noise_samples if num_noise_samples is not None else config.num_noise_samples
        num_steps = num_inference_steps if num_inference_steps is not None else config.num_inference_steps
        if num_chains < 1:
            raise ValueError(f"num_noise_samples must be >= 1; got {num_chains}")
        batch_size = points.shape[0]
        if isinstance(generator, (list, tuple)) and len(generator) != batch_size:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch_size} clouds; pass one per cloud")

        # the baseline's embedding is its head's (K noisy copies averaged with input smoothing)
        readout = "head" if config.objective == "contrastive" else readout or config.zero_shot_readout
        start = config.denoiser_start_timestep if start_timestep is None else start_timestep
        start = None if start == -1 or config.objective == "contrastive" else start
        uses_head = readout != "denoiser" or start is not None
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}; got {readout!r}")
        if uses_head and not hasattr(self, "projection"):
            raise ValueError(f"readout={readout!r} and start_timestep={start} read the contrastive head, which this "
                             "model has not (train one with contrastive_head_weight > 0)")
        if noise_level > 0:  # input smoothing: one point-noise draw per chain, the encoder sees B * K clouds
            hidden_states = self.encode(self._noisy_copies(points, num_chains, noise_level, generator))
            num_clouds, chains_per_cloud = batch_size * num_chains, 1
        else:
            hidden_states = self.encode(points)
            num_clouds, chains_per_cloud = batch_size, num_chains
        if uses_head:  # the contrastive head's embedding, (num_clouds, D), and its mean per cloud, (B, D)
            head = F.normalize(self._pool_and_project(hidden_states[-1]).float(), dim=-1)
            head_mean = F.normalize(head.reshape(batch_size, -1, config.embed_dim).mean(dim=1), dim=-1)
            if readout == "head":
                return head_mean
        context = self.denoiser.project_context(hidden_states)

        dtype = context[0][0].dtype
        sample = randn_tensor((num_clouds * chains_per_cloud, config.embed_dim), context[0][0], generator).float()
        if start is not None:  # (SDEdit) z_t* = sqrt(abar_t*) sqrt(D) head + sqrt(1 - abar_t*) eps, then t* -> 0
            origin = math.sqrt(config.embed_dim) * head.repeat_interleave(chains_per_cloud, dim=0)
            sample = self.scheduler.add_noise(origin, sample, torch.full((sample.shape[0],), start, dtype=torch.long))
        for timestep in self.scheduler.set_timesteps(num_steps, start).tolist():
            timesteps = torch.full((sample.shape[0],), timestep, dtype=torch.long, device=sample.device)
            model_output = self.denoiser(sample.to(dtype), timesteps, context).float()
            sample = self.scheduler.step(model_output, timestep, sample.float())
        chains = F.normalize(sample.float(), dim=-1).reshape(batch_size, num_chains, -1)
        denoised = F.normalize(chains.mean(dim=1), dim=-1)
        if readout == "fusion":
            weight = config.readout_fusion_weight if fusion_weight is None else fusion_weight
            return F.normalize(weight * head_mean + (1 - weight) * denoised, dim=-1)
        return denoised

    def get_orientation_logits(self, points: torch.Tensor) -> torch.Tensor:
        """`(B, 24)` logits over `orientations.ORIENTATIONS`: entry `o` scores "`ORIENTATIONS[o] @ x` is
        upright", read from the clean cloud's encoder tokens (`config.orientation_head` must be set)."""
        if self.orientation_head is None:
            raise ValueError("this model has no orientation head (config.orientation_head is False); fit one with "
                             "dual_denoising.training.fit_orientation_head, or pass up_axis='y', 'z' or 'x'")
        return self.orientation_head(self.encode(points))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The teacher's projected text embeddings `(T, D)` (not normalised, as `CLIPModel.get_text_features`)."""
        if self.text_model is None:
            raise ValueError("this model has no text tower; build it with DualDenoisingModel.from_teacher(...) or "
                             "pass class embeddings computed with the teacher CLIP")
        return self.text_model(input_ids=input_ids, attention_mask=attention_mask).text_embeds

    def zero_shot_logits(self, points: torch.Tensor, class_embeds: torch.Tensor, **feature_kwargs) -> torch.Tensor:
        """`logit_scale * cos(point_embedding, class_embedding)`: `(B, C)` for class embeddings `(C, D)`.
        `feature_kwargs` go to `get_point_features` (num_noise_samples, num_inference_steps, generator)."""
        point_embeds = self.get_point_features(points, **feature_kwargs)
        class_embeds = F.normalize(class_embeds.to(point_embeds), dim=-1)
        return self.logit_scale.exp().float() * point_embeds @ class_embeds.T


__all__ = ["DualDenoisingModel", "DualDenoisingPreTrainedModel", "DualDenoisingModelOutput"]

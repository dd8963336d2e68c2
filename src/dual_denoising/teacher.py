"""A small CLIP teacher trained from scratch on triples, and the frozen-teacher features the 3D model learns from.

Two jobs live here (design, section 10):

1. `train_teacher`: train a real `transformers.CLIPModel` (a tiny ViT and a tiny text transformer) contrastively on
   the rendered views and captions of a triples dataset, with a byte-level BPE tokenizer learnt from the captions and
   a `CLIPImageProcessor` set to the render size and the data's mean/std. Everything is written with
   `save_pretrained`, so the folder loads through exactly the calls that load `openai/clip-vit-base-patch16`:

       model = CLIPModel.from_pretrained(folder)
       processor = CLIPProcessor.from_pretrained(folder)      # or AutoProcessor / AutoTokenizer

2. `precompute_features` (CLI: `dual-denoising precompute-features`): run any such CLIP (the small teacher or a real
   one) over a triples folder and add the `image_embeds` / `text_embeds` columns.

`encode_class_prompts` and `zero_shot_evaluate` are the zero-shot helpers the rest of the package reuses.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from datasets.utils.logging import disable_progress_bar, enable_progress_bar, is_progress_bar_enabled
from tqdm.auto import tqdm

from .data import load_triples, load_triples_metadata, save_triples, triples_features
from .distributed import make_accelerator
from .prompts import DEFAULT_TEMPLATES, encode_class_names, label_to_text

# ULIP-style prompts for 3D zero-shot classification: the package's one list, `dual_denoising.prompts`.
DEFAULT_3D_TEMPLATES: list[str] = list(DEFAULT_TEMPLATES)

# The split-off regex and normaliser of OpenAI CLIP's tokenizer, as `transformers.CLIPTokenizer` builds them.
_CLIP_SPLIT_PATTERN = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"
_WORD_END = "</w>"

TEACHER_METRICS_FILE = "teacher_metrics.json"


@dataclass
class TeacherConfig:
    """Every hyper-parameter of the small teacher: the two towers, the tokenizer, the training run, the augmentation."""

    # vision tower: a ViT over image_size x image_size renders
    image_size: int = 64
    patch_size: int = 8
    vision_hidden_size: int = 128
    vision_num_layers: int = 4
    vision_num_heads: int = 4
    # text tower
    text_hidden_size: int = 128
    text_num_layers: int = 3
    text_num_heads: int = 4
    max_length: int = 64  # tokens per caption, BOS and EOS included (max_position_embeddings)
    mlp_ratio: int = 4
    hidden_act: str = "gelu"  # OpenAI CLIP uses "quick_gelu"; exact GELU is one fused kernel, faster on CPU
    # attention kernel while training: "eager" (plain matmuls) is ~2x faster than "sdpa" on CPU under bf16 autocast,
    # whose CPU flash-attention backward is slow in bf16; the saved model loads with transformers' default either way
    attn_implementation: str = "eager"
    projection_dim: int = 512  # D: the embedding size downstream code cuts into feature tokens
    logit_scale_init: float = 2.6592  # log(1 / 0.07), CLIP's initial temperature
    # tokenizer: byte-level BPE learnt from the training captions (vocab size includes the 512 byte symbols)
    tokenizer_vocab_size: int = 2048
    # training
    # "no" | "bf16" | "fp16" | "auto": bf16 where the device computes it natively (AMX / AVX512-BF16 CPUs, recent
    # GPUs), else full precision; used when `train_teacher` builds its own Accelerator
    mixed_precision: str = "auto"
    epochs: int = 25
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.1
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    # optional wall-clock budget of the training loop: the warmup/cosine schedule then advances by whichever is
    # further along, steps or time, and training stops when the time is spent, so a run on a busy machine still ends
    # annealed, within its budget, after fewer epochs (None: a fixed number of steps, reproducible)
    max_train_seconds: float | None = None
    seed: int = 0
    # with this probability a training caption is replaced by a prompt template filled with the class name,
    # as ULIP builds its text side from category names; 0 trains on the dataset captions only
    template_caption_prob: float = 0.0
    # label-aware targets (UniCL-style): this share of each image's (and caption's) target goes, evenly, to the
    # batch's pairs of the same class instead of only its own pair; 0 is plain CLIP. Same-class captions are
    # otherwise pushed apart as negatives, which is noise when a batch holds several shapes of one class
    same_class_target_weight: float = 0.5
    # augmentation of the training views (torch ops on whole batches)
    crop_scale_min: float = 0.75  # random resized crop keeps this fraction of the area at least
    crop_aspect_max: float = 4 / 3  # ... with an aspect ratio in [1 / crop_aspect_max, crop_aspect_max]
    flip_prob: float = 0.5
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        for width, heads, name in (
            (self.vision_hidden_size, self.vision_num_heads, "vision"),
            (self.text_hidden_size, self.text_num_heads, "text"),
        ):
            if width % heads:
                raise ValueError(f"{name}_hidden_size ({width}) must be divisible by {name}_num_heads ({heads})")
        if not 0.0 <= self.same_class_target_weight <= 1.0:
            raise ValueError(f"same_class_target_weight must be in [0, 1]; got {self.same_class_target_weight}")
        if not 0.0 <= self.template_caption_prob <= 1.0:
            raise ValueError(f"template_caption_prob must be in [0, 1]; got {self.template_caption_prob}")
        if not 0.0 < self.crop_scale_min <= 1.0:
            raise ValueError(f"crop_scale_min must be in (0, 1]; got {self.crop_scale_min}")
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            raise ValueError(f"mixed_precision must be 'no', 'bf16', 'fp16' or 'auto'; got {self.mixed_precision!r}")
        if self.crop_aspect_max < 1.0:
            raise ValueError(f"crop_aspect_max must be >= 1; got {self.crop_aspect_max}")


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer and image processor
# ----------------------------------------------------------------------------------------------------------------


def train_caption_tokenizer(captions: Iterable[str], vocab_size: int = 2048, model_max_length: int = 77):
    """Learn a byte-level BPE from `captions` and return it as a `transformers.CLIPTokenizer`.

    The normaliser (NFC, collapse whitespace, lower-case), the word-splitting regex, the byte-level alphabet and the
    `</w>` end-of-word suffix are OpenAI CLIP's, so the result behaves like CLIP's tokenizer on any string (all 256
    bytes and their word-final forms are in the vocabulary: nothing maps to unknown), and `save_pretrained` /
    `CLIPTokenizer.from_pretrained` / `AutoTokenizer.from_pretrained` treat it like the real one. The vocabulary is
    laid out as CLIP's: bytes, word-final bytes, one token per merge, then `<|startoftext|>` and `<|endoftext|>`
    (which is also the padding token).
    """
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import CLIPTokenizer

    bpe = Tokenizer(BPE(unk_token=_EOS, continuing_subword_prefix="", end_of_word_suffix=_WORD_END))
    bpe.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CLIP_SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[],
        initial_alphabet=alphabet,
        continuing_subword_prefix="",
        end_of_word_suffix=_WORD_END,
        show_progress=False,
    )
    bpe.train_from_iterator(captions, trainer)
    learnt = json.loads(bpe.to_str())["model"]["merges"]  # pairs, or "a b" strings in older tokenizers
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learnt]

    vocab: dict[str, int] = {}
    for token in alphabet + [a + _WORD_END for a in alphabet]:
        vocab[token] = len(vocab)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    for special in (_BOS, _EOS):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def _image_processor_class():
    # transformers 5 gives CLIPImageProcessor a torchvision backend and falls back to the PIL one (with a warning)
    # when torchvision is missing, as on these machines; both save as "CLIPImageProcessor".
    from transformers import CLIPImageProcessor

    if importlib.util.find_spec("torchvision") is None:
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    return CLIPImageProcessor


def build_image_processor(image_size: int, image_mean: Sequence[float], image_std: Sequence[float]):
    """A `CLIPImageProcessor` that resizes (shortest edge, bicubic) and centre-crops to `image_size`, then
    normalises with the given per-channel mean/std (of pixel values in [0, 1])."""
    return _image_processor_class()(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[float(m) for m in image_mean],
        image_std=[float(s) for s in image_std],
    )


def build_teacher_model(config: TeacherConfig, tokenizer):
    """A randomly initialised `CLIPModel` of the configured size whose text tower matches `tokenizer`."""
    from transformers import CLIPConfig, CLIPModel

    clip_config = CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=config.text_hidden_size,
            intermediate_size=config.mlp_ratio * config.text_hidden_size,
            num_hidden_layers=config.text_num_layers,
            num_attention_heads=config.text_num_heads,
            max_position_embeddings=config.max_length,
            hidden_act=config.hidden_act,
            projection_dim=config.projection_dim,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,  # pooling reads the first EOS (padding is EOS too)
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            image_size=config.image_size,
            patch_size=config.patch_size,
            hidden_size=config.vision_hidden_size,
            intermediate_size=config.mlp_ratio * config.vision_hidden_size,
            num_hidden_layers=config.vision_num_layers,
            num_attention_heads=config.vision_num_heads,
            hidden_act=config.hidden_act,
            projection_dim=config.projection_dim,
        ),
        projection_dim=config.projection_dim,
        logit_scale_init_value=config.logit_scale_init,
    )
    model = CLIPModel(clip_config)
    model.set_attn_implementation(config.attn_implementation)
    return model


# ----------------------------------------------------------------------------------------------------------------
# Zero-shot helpers
# ----------------------------------------------------------------------------------------------------------------


def _text_features(model, **inputs) -> torch.Tensor:
    """Projected text embeddings from a `CLIPModel` or a `CLIPTextModelWithProjection`."""
    if hasattr(model, "get_text_features"):
        out = model.get_text_features(**inputs)
        return out if isinstance(out, torch.Tensor) else out.pooler_output  # v4 returned a tensor
    return model(**inputs).text_embeds


def _image_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    if hasattr(model, "get_image_features"):
        out = model.get_image_features(pixel_values=pixel_values)
        return out if isinstance(out, torch.Tensor) else out.pooler_output
    return model(pixel_values=pixel_values).image_embeds


def _model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_class_prompts(
    teacher_or_text_model,
    tokenizer,
    class_names: Sequence[str],
    templates: Sequence[str] = DEFAULT_3D_TEMPLATES,
) -> torch.Tensor:
    """Zero-shot class embeddings `(C, D)`: for each class, the mean over `templates` of the L2-normalised text
    embeddings of `template.format(name)`, normalised again (CLIP / ULIP practice; the computation is
    `dual_denoising.prompts.encode_class_names`, so the teacher and the 3D model are scored alike). Underscores in
    class names read as spaces (`night_stand` -> "night stand"). Takes a `CLIPModel` or a
    `CLIPTextModelWithProjection`."""
    return encode_class_names(
        lambda **inputs: _text_features(teacher_or_text_model, **inputs),
        tokenizer,
        class_names,
        list(templates),
        device=_model_device(teacher_or_text_model),
    )


@torch.no_grad()
def zero_shot_evaluate(
    model,
    processor,
    dataset,
    class_names: Sequence[str] | None = None,
    templates: Sequence[str] = DEFAULT_3D_TEMPLATES,
    batch_size: int = 256,
    show_progress: bool = True,
) -> dict:
    """Zero-shot top-1 of a CLIP model on the rendered views of a labelled triples split.

    Every view is one test image, classified by cosine similarity against `encode_class_prompts`; the images go
    through `processor` (the saved `CLIPProcessor`), as a user's would. Returns
    `{"top1", "per_class": {name: top1}, "num_images", "shape_top1", "num_shapes"}`; `shape_top1` classifies a
    shape by the mean of its views' similarities.
    """
    if class_names is None:
        class_names = dataset.features["label"].names
    class_embeds = encode_class_prompts(model, processor.tokenizer, class_names, templates)  # (C, D)
    device = _model_device(model)
    view_logits, view_labels, view_rows = [], [], []
    batch_images: list = []

    def flush():
        pixel_values = processor.image_processor(batch_images, return_tensors="pt")["pixel_values"].to(device)
        image_embeds = F.normalize(_image_features(model, pixel_values).float(), dim=-1)
        view_logits.append((image_embeds @ class_embeds.T).cpu())
        batch_images.clear()

    rows = dataset.select_columns(["images", "label"])
    for row_index, row in enumerate(tqdm(rows, desc="zero-shot eval", disable=not show_progress, leave=False)):
        for image in row["images"]:
            batch_images.append(image.convert("RGB"))
            view_labels.append(row["label"])
            view_rows.append(row_index)
            if len(batch_images) == batch_size:
                flush()
    if batch_images:
        flush()
    if not view_labels:
        raise ValueError("the dataset holds no rendered views to classify")
    logits = torch.cat(view_logits)  # (V, C)
    labels = torch.tensor(view_labels)
    rows_t = torch.tensor(view_rows)
    correct = logits.argmax(dim=1) == labels
    per_class = {}
    for c, name in enumerate(class_names):
        mask = labels == c
        if mask.any():
            per_class[name] = correct[mask].float().mean().item()
    num_shapes = int(rows_t.max()) + 1
    shape_logits = torch.zeros(num_shapes, logits.shape[1]).index_add_(0, rows_t, logits)
    shape_labels = torch.zeros(num_shapes, dtype=torch.long).index_copy_(0, rows_t, labels)
    return {
        "top1": correct.float().mean().item(),
        "per_class": per_class,
        "num_images": len(view_labels),
        "shape_top1": (shape_logits.argmax(dim=1) == shape_labels).float().mean().item(),
        "num_shapes": num_shapes,
    }


# ----------------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------------


def _views_to_uint8(images: list, image_processor, batch_size: int = 512) -> torch.Tensor:
    """Resize/crop PIL views exactly as `image_processor` does, without rescaling or normalising: `(V, 3, S, S)`
    uint8. Training normalises with the processor's mean/std after augmentation, so the two paths agree."""
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = [im.convert("RGB") for im in images[start : start + batch_size]]
        pixels = image_processor(batch, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"]
        chunks.append(torch.from_numpy(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)))
    return torch.cat(chunks)


def augment_views(images: torch.Tensor, config: TeacherConfig, generator: torch.Generator) -> torch.Tensor:
    """Random resized crop, horizontal flip and brightness/contrast/saturation jitter of a batch `(B, 3, H, W)` of
    floats in [0, 1]; one draw per image, from `generator` (a CPU generator; the ops run on the images' device)."""
    b, _, h, w = images.shape
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return (low + (high - low) * torch.rand(b, generator=generator)).to(device)

    # random resized crop as an affine resampling: area fraction in [crop_scale_min, 1], log-uniform aspect ratio
    area = uniform(config.crop_scale_min, 1.0)
    log_ratio = uniform(-math.log(config.crop_aspect_max), math.log(config.crop_aspect_max))
    sx = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    sy = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    tx = (uniform(-1.0, 1.0)) * (1 - sx)
    ty = (uniform(-1.0, 1.0)) * (1 - sy)
    flip = torch.where(uniform(0.0, 1.0) < config.flip_prob, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = sx * flip
    theta[:, 0, 2] = tx
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, (b, 3, h, w), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # colour jitter (no hue: captions may name colours)
    gray = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1)  # (B, 1, H, W)
    images = images * uniform(1 - config.brightness, 1 + config.brightness).view(b, 1, 1, 1)
    mean = gray.mean(dim=(2, 3), keepdim=True)
    images = (images - mean) * uniform(1 - config.contrast, 1 + config.contrast).view(b, 1, 1, 1) + mean
    s = uniform(1 - config.saturation, 1 + config.saturation).view(b, 1, 1, 1)
    images = images * s + gray * (1 - s)
    return images.clamp(0.0, 1.0)


def clip_contrastive_loss(
    logits_per_image: torch.Tensor, labels: torch.Tensor | None = None, same_class_weight: float = 0.0
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE over a `(B, B)` image-text logit matrix whose diagonal holds the pairs.

    With `labels` `(B,)` and `same_class_weight` w > 0, each row's target is `(1 - w) * own pair + w * uniform over
    the pairs of the same class` (UniCL-style soft targets); w = 0 is plain CLIP.
    """
    n = logits_per_image.shape[0]
    targets = torch.eye(n, device=logits_per_image.device)
    if labels is not None and same_class_weight > 0:
        same = (labels[:, None] == labels[None, :]).float()  # (B, B), symmetric
        targets = (1 - same_class_weight) * targets + same_class_weight * same / same.sum(dim=1, keepdim=True)
    loss_image = torch.sum(-targets * F.log_softmax(logits_per_image, dim=1), dim=1).mean()
    loss_text = torch.sum(-targets * F.log_softmax(logits_per_image.T, dim=1), dim=1).mean()
    return 0.5 * (loss_image + loss_text)


def _lr_factor(progress: float, warmup_ratio: float) -> float:
    """Linear warmup over the first `warmup_ratio` of training, then cosine decay to zero; `progress` in [0, 1]."""
    if progress < warmup_ratio:
        return max(progress / warmup_ratio, 1e-3)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (progress - warmup_ratio) / max(1e-8, 1.0 - warmup_ratio))))


def _param_groups(model, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # no decay on biases, norms, embeddings and the temperature
        if param.ndim < 2 or "embedding" in name or "logit_scale" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _native_bf16() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


def default_accelerator(mixed_precision: str = "auto", **kwargs):
    """An `Accelerator` that also runs multi-process on CPU-only machines (accelerate takes the CPU/gloo path under
    `torchrun` / `accelerate launch` only when asked with `cpu=True`, so ask for it when torch sees no accelerator).
    `mixed_precision="auto"` means bf16 where the device computes it natively, else full precision."""
    if mixed_precision == "auto":
        mixed_precision = "bf16" if _native_bf16() else "no"
    return make_accelerator(mixed_precision=mixed_precision, **kwargs)


def train_teacher(
    dataset_dir: str | Path,
    output_dir: str | Path,
    config: TeacherConfig | None = None,
    templates: Sequence[str] = DEFAULT_3D_TEMPLATES,
    accelerator=None,
    evaluate: bool = True,
    show_progress: bool = True,
) -> dict:
    """Train the small CLIP teacher on the `train` split of a triples folder and save it to `output_dir`.

    Every view of every training shape is one image per epoch, paired with one caption of its shape drawn at random
    (or, with probability `template_caption_prob`, a prompt template filled with its class name). Runs under
    `accelerate launch`, `torchrun` or plain python; with several processes each computes the contrastive loss over
    its own batch. After training, the main process reloads the folder with `CLIPModel.from_pretrained` /
    `CLIPProcessor.from_pretrained` and (with `evaluate`) measures zero-shot top-1 on the `test` split with
    `templates`. The metrics, the config and the timings go to `output_dir/teacher_metrics.json` and are returned.
    """
    from accelerate.utils import set_seed
    from transformers import CLIPModel, CLIPProcessor

    config = config or TeacherConfig()
    accelerator = accelerator or default_accelerator(config.mixed_precision)
    set_seed(config.seed)
    t_start = time.perf_counter()
    dataset_dir, output_dir = Path(dataset_dir), Path(output_dir)

    train = load_triples(dataset_dir, split="train")
    missing = {"images", "captions", "label"} - set(train.column_names)
    if missing:
        raise ValueError(
            f"{dataset_dir} train split lacks columns {sorted(missing)}; a teacher needs views, captions and labels"
        )
    class_names = train.features["label"].names

    # --- data: every view as uint8, every caption pre-tokenised ------------------------------------------------
    rows = train.select_columns(["images", "captions", "label"])
    images, view_rows, captions, caption_rows, labels = [], [], [], [], []
    for r, row in enumerate(rows):
        if not row["images"] or not row["captions"]:
            raise ValueError(f"train row {r} has no images or no captions; every shape needs both")
        images.extend(row["images"])
        view_rows.extend([r] * len(row["images"]))
        captions.extend(row["captions"])
        caption_rows.extend([r] * len(row["captions"]))
        labels.append(row["label"])

    tokenizer = train_caption_tokenizer(captions, config.tokenizer_vocab_size, model_max_length=config.max_length)
    image_processor = build_image_processor(config.image_size, [0.5] * 3, [0.5] * 3)
    bank = _views_to_uint8(images, image_processor)  # (V, 3, S, S) uint8
    del images
    as_float = bank.float().div_(255.0)
    image_mean = as_float.mean(dim=(0, 2, 3))
    image_std = as_float.std(dim=(0, 2, 3)).clamp(min=1e-3)
    del as_float
    image_processor = build_image_processor(config.image_size, image_mean.tolist(), image_std.tolist())
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)

    def tokenize(texts: list[str]) -> torch.Tensor:
        ids = tokenizer(texts, padding="max_length", truncation=True, max_length=config.max_length, return_tensors="pt")
        return ids["input_ids"]

    caption_ids = tokenize(captions)  # (Ncap, L)
    truncated = sum(len(ids) > config.max_length for ids in tokenizer(captions)["input_ids"])
    if truncated:
        accelerator.print(f"warning: {truncated} captions are longer than max_length={config.max_length} and are cut")
    caption_rows_t = torch.tensor(caption_rows)
    row_caption_start = torch.zeros(len(labels), dtype=torch.long)
    row_caption_count = torch.bincount(caption_rows_t, minlength=len(labels))
    row_caption_start[1:] = row_caption_count.cumsum(0)[:-1]
    template_ids = tokenize([t.format(label_to_text(c)) for c in class_names for t in templates])  # (C*T, L)
    used = torch.cat([caption_ids, template_ids] if config.template_caption_prob > 0 else [caption_ids])
    text_length = min(int((used != tokenizer.pad_token_id).sum(dim=1).max()) + 1, config.max_length)
    labels_t = torch.tensor(labels)
    view_rows_t = torch.tensor(view_rows)

    # --- model, optimiser, loader ---------------------------------------------------------------------------------
    model = build_teacher_model(config, tokenizer)
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.learning_rate, betas=(0.9, 0.98))
    loader = torch.utils.data.DataLoader(
        torch.arange(len(view_rows_t)), batch_size=config.batch_size, shuffle=True, drop_last=True
    )
    if len(loader) == 0:
        raise ValueError(f"{len(view_rows_t)} training views are fewer than one batch of {config.batch_size}")
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    total_steps = config.epochs * len(loader)  # optimiser steps of this process
    mean = image_mean.view(1, 3, 1, 1).to(accelerator.device)
    std = image_std.view(1, 3, 1, 1).to(accelerator.device)
    generator = torch.Generator().manual_seed(config.seed + accelerator.process_index)
    max_logit_scale = math.log(100.0)

    accelerator.print(
        f"teacher: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, {len(labels)} shapes, "
        f"{len(view_rows_t)} views, {len(captions)} captions, {len(class_names)} classes, vocab {len(tokenizer)}, "
        f"{total_steps} steps"
    )
    t_train = time.perf_counter()
    step, losses, stopped_early = 0, [], False
    progress = tqdm(total=total_steps, desc="teacher", disable=not (show_progress and accelerator.is_main_process))
    model.train()
    for epoch in range(config.epochs):
        for view_index in loader:
            # the learning rate follows the schedule's progress: by steps, or by time when that is further along
            done = step / total_steps
            if config.max_train_seconds is not None:
                elapsed = torch.tensor(time.perf_counter() - t_train, device=accelerator.device)
                elapsed = accelerator.reduce(elapsed, "max").item()  # every rank stops at the same step
                if elapsed >= config.max_train_seconds:
                    stopped_early = True
                    break
                done = max(done, elapsed / config.max_train_seconds)
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * _lr_factor(done, config.warmup_ratio)

            view_index = view_index.cpu()
            row = view_rows_t[view_index]
            pick = (torch.rand(len(row), generator=generator) * row_caption_count[row]).long()
            input_ids = caption_ids[row_caption_start[row] + pick]
            if config.template_caption_prob > 0:
                use_template = torch.rand(len(row), generator=generator) < config.template_caption_prob
                template = torch.randint(len(templates), (len(row),), generator=generator)
                input_ids = torch.where(
                    use_template[:, None], template_ids[labels_t[row] * len(templates) + template], input_ids
                )
            attention_mask = (input_ids != tokenizer.pad_token_id).long()
            eos_position = attention_mask.sum(dim=1).clamp(max=input_ids.shape[1] - 1)
            attention_mask[torch.arange(len(row)), eos_position] = 1  # the EOS has the padding id
            # one text length for the whole run (the longest caption), not per batch: CPU kernels (oneDNN) are
            # built once per input shape, and a new length every step costs far more than the padding
            input_ids, attention_mask = input_ids[:, :text_length], attention_mask[:, :text_length]

            pixels = bank[view_index].to(accelerator.device).float().div_(255.0)
            pixels = (augment_views(pixels, config, generator) - mean) / std
            with accelerator.autocast():
                out = model(
                    input_ids=input_ids.to(accelerator.device),
                    attention_mask=attention_mask.to(accelerator.device),
                    pixel_values=pixels,
                )
                loss = clip_contrastive_loss(
                    out.logits_per_image.float(), labels_t[row].to(accelerator.device), config.same_class_target_weight
                )
            accelerator.backward(loss)
            if config.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                accelerator.unwrap_model(model).logit_scale.clamp_(0, max_logit_scale)
            step += 1
            losses.append(loss.item())
            progress.update(1)
            if step % 50 == 0:
                progress.set_postfix(epoch=epoch, loss=f"{np.mean(losses[-50:]):.3f}")
            if not show_progress and (step % max(1, total_steps // 20) == 0 or step == total_steps):
                accelerator.print(
                    f"step {step}/{total_steps} epoch {epoch} loss {np.mean(losses[-50:]):.3f} "
                    f"T {1 / accelerator.unwrap_model(model).logit_scale.exp().item():.3f} "
                    f"lr {optimizer.param_groups[0]['lr']:.2e} {time.perf_counter() - t_train:.0f} s"
                )
        if stopped_early:
            break
    progress.close()
    train_seconds = time.perf_counter() - t_train

    accelerator.wait_for_everyone()
    metrics: dict = {}
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        accelerator.unwrap_model(model).save_pretrained(output_dir)
        processor.save_pretrained(output_dir)
        metrics = {
            "dataset": str(dataset_dir),
            "classes": list(class_names),
            "num_train_shapes": len(labels),
            "num_train_views": len(view_rows_t),
            "num_train_captions": len(captions),
            "steps": step,
            "epochs_completed": step / len(loader),
            "stopped_early": stopped_early,
            "final_loss": float(np.mean(losses[-50:])) if losses else None,
            "train_seconds": train_seconds,
            "num_processes": accelerator.num_processes,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_1m_5m_15m": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "device": str(accelerator.device),
            "mixed_precision": str(accelerator.mixed_precision),
            "templates": list(templates),
            "config": asdict(config),
        }
        if evaluate:
            # load back through the public path, exactly as a user (or precompute-features) will
            loaded = CLIPModel.from_pretrained(output_dir).to(accelerator.device).eval()
            loaded_processor = CLIPProcessor.from_pretrained(output_dir)
            test = load_triples(dataset_dir, split="test")
            result = zero_shot_evaluate(
                loaded, loaded_processor, test, class_names, templates, show_progress=show_progress
            )
            metrics.update(
                zero_shot_top1=result["top1"],
                zero_shot_shape_top1=result["shape_top1"],
                zero_shot_per_class=result["per_class"],
                num_test_views=result["num_images"],
                num_test_shapes=result["num_shapes"],
            )
        metrics["total_seconds"] = time.perf_counter() - t_start
        (output_dir / TEACHER_METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    accelerator.wait_for_everyone()
    return metrics


# ----------------------------------------------------------------------------------------------------------------
# Teacher features for a triples folder
# ----------------------------------------------------------------------------------------------------------------


def teacher_fingerprint(teacher: str | Path) -> str:
    """A content fingerprint of a teacher: for a local folder, SHA-256 over its config and weight files (so a
    retrained teacher at the same path is told apart); for a Hub id, the id itself."""
    path = Path(teacher)
    if not path.is_dir():
        return f"hub:{teacher}"
    digest = hashlib.sha256()
    suffixes = {".json", ".safetensors", ".bin", ".txt"}
    files = sorted(p for p in path.iterdir() if p.suffix in suffixes and p.name != TEACHER_METRICS_FILE)
    if not any(p.suffix in {".safetensors", ".bin"} for p in files):
        raise FileNotFoundError(
            f"{path} holds no model weights (*.safetensors / *.bin); is it a save_pretrained folder?"
        )
    for p in files:
        digest.update(p.name.encode())
        with p.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()


def _features_are_current(dataset_dir: Path, fingerprint: str) -> bool:
    """The metadata names this teacher and every split file has both columns (schemas only; no data is read)."""
    import pyarrow.parquet as pq

    record = load_triples_metadata(dataset_dir).get("teacher_features")
    if not record or record.get("fingerprint") != fingerprint:
        return False
    files = sorted((dataset_dir / "data").glob("*.parquet"))
    return bool(files) and all({"image_embeds", "text_embeds"} <= set(pq.read_schema(f).names) for f in files)


def precompute_features(
    dataset_dir: str | Path,
    teacher_dir: str | Path,
    batch_size: int = 64,
    overwrite: bool = False,
    device: str | torch.device | None = None,
    show_progress: bool = True,
) -> dict:
    """Add the frozen teacher's `image_embeds` (views, D) and `text_embeds` (captions, D) to every split of a
    triples folder, rewriting its parquet files in place.

    The teacher is any CLIP that `CLIPModel.from_pretrained` / `CLIPProcessor.from_pretrained` load: a local folder
    (such as one written by `train_teacher`) or a Hub id such as `openai/clip-vit-base-patch16`. The stored values
    are the **raw projected embeddings** (`get_image_features(...).pooler_output` and
    `get_text_features(...).pooler_output`), **not L2-normalised**: consumers normalise (the feature-denoising target
    is `sqrt(D) * normalize(e)`). A row without captions gets a `(0, D)` text array.

    The teacher, its fingerprint (`teacher_fingerprint`) and D are recorded under `"teacher_features"` in the
    folder's `dual_denoising.json`; a later call with the same teacher returns that record without recomputing,
    unless `overwrite=True`. Returns the record, with `"reused": True|False`.
    """
    from transformers import CLIPModel, CLIPProcessor

    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "data").is_dir():
        raise FileNotFoundError(f"{dataset_dir} is not a triples folder (no data/ inside); write one with save_triples")
    fingerprint = teacher_fingerprint(teacher_dir)
    if not overwrite and _features_are_current(dataset_dir, fingerprint):
        return {**load_triples_metadata(dataset_dir)["teacher_features"], "reused": True}

    if device is None:  # the machine's accelerator (CUDA, XPU, MPS ...) when it has one
        has_accelerator = hasattr(torch, "accelerator") and torch.accelerator.is_available()
        device = torch.accelerator.current_accelerator() if has_accelerator else torch.device("cpu")
    model = CLIPModel.from_pretrained(str(teacher_dir)).to(device).eval()
    processor = CLIPProcessor.from_pretrained(str(teacher_dir))
    embed_dim = model.config.projection_dim
    embed_features = triples_features(with_images=False, with_captions=False, embed_dim=embed_dim)

    @torch.no_grad()
    def embed(batch: dict) -> dict:
        views = [im.convert("RGB") for ims in batch["images"] for im in ims]
        texts = [c for caps in batch.get("captions", [[]] * len(batch["images"])) for c in caps]
        image_embeds = np.zeros((0, embed_dim), np.float32)
        if views:
            pixel_values = processor.image_processor(views, return_tensors="pt")["pixel_values"].to(device)
            image_embeds = _image_features(model, pixel_values).float().cpu().numpy()
        text_embeds = np.zeros((0, embed_dim), np.float32)
        if texts:
            inputs = processor.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
            inputs = {k: v.to(device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
            text_embeds = _text_features(model, **inputs).float().cpu().numpy()
        out_images, out_texts, i, j = [], [], 0, 0
        for r, ims in enumerate(batch["images"]):
            n_caps = len(batch["captions"][r]) if "captions" in batch else 0
            out_images.append(image_embeds[i : i + len(ims)])
            out_texts.append(text_embeds[j : j + n_caps])
            i, j = i + len(ims), j + n_caps
        return {"image_embeds": out_images, "text_embeds": out_texts}

    splits = load_triples(dataset_dir)
    for name, ds in splits.items():
        if "images" not in ds.column_names:
            raise ValueError(
                f"split {name!r} of {dataset_dir} has no 'images' column; the teacher embeds rendered views"
            )
        ds = ds.remove_columns([c for c in ("image_embeds", "text_embeds") if c in ds.column_names])
        features = ds.features.copy()
        features.update(embed_features)
        # rows are decoded in batches of `batch_size` shapes; one forward per batch for views and for captions
        map_kwargs = dict(
            batched=True,
            batch_size=batch_size,
            features=features,
            load_from_cache_file=False,
            new_fingerprint=hashlib.sha256(f"{fingerprint}:{name}:{ds._fingerprint}".encode()).hexdigest()[:16],
            desc=f"teacher features ({name})",
        )
        bars_were_on = is_progress_bar_enabled()
        if not show_progress:
            disable_progress_bar()
        try:
            splits[name] = ds.map(embed, **map_kwargs)
        finally:
            if bars_were_on:
                enable_progress_bar()

    record = {
        "teacher": str(teacher_dir),
        "fingerprint": fingerprint,
        "embed_dim": embed_dim,
        "normalized": False,
        "image_embeds": "CLIPModel.get_image_features(pixel_values).pooler_output, one row per view",
        "text_embeds": "CLIPModel.get_text_features(input_ids).pooler_output, one row per caption",
    }
    metadata = load_triples_metadata(dataset_dir)
    metadata["teacher_features"] = record
    metadata["splits"] = {name: len(ds) for name, ds in splits.items()}
    save_triples(splits, dataset_dir, metadata=metadata, overwrite=True)
    return {**record, "reused": False}


def _run_precompute(args: argparse.Namespace) -> int:
    record = precompute_features(args.dataset, args.teacher, batch_size=args.batch_size, overwrite=args.overwrite)
    if record["reused"]:
        print(f"{args.dataset}: teacher features from {args.teacher} are already there (pass --overwrite to recompute)")
    else:
        print(f"{args.dataset}: wrote image_embeds/text_embeds (D={record['embed_dim']}) from {args.teacher}")
    return 0


def register_cli(subparsers) -> None:
    """Add `precompute-features` to the `dual-denoising` command line."""
    parser = subparsers.add_parser(
        "precompute-features",
        help="add frozen-CLIP image/text embeddings to a triples dataset",
        description=(
            "Embed every rendered view and caption of a triples folder with a CLIP teacher (a local "
            "save_pretrained folder or a Hub id) and add image_embeds / text_embeds columns (raw projections, "
            "not normalised). A result from the same teacher is reused unless --overwrite is given."
        ),
    )
    parser.add_argument("--teacher", required=True, metavar="CLIP_DIR", help="CLIP folder or Hub id")
    parser.add_argument("--dataset", required=True, metavar="DIR", help="triples folder written by save_triples")
    parser.add_argument("--batch-size", type=int, default=64, help="shapes per forward pass (default: 64)")
    parser.add_argument("--overwrite", action="store_true", help="recompute even if features from this teacher exist")
    parser.set_defaults(func=_run_precompute)

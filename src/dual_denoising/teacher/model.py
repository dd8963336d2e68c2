"""The teacher's parts: a caption BPE tokenizer in CLIP's format, the image processor, and a tiny `CLIPModel`."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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

"""Class embeddings for zero-shot classification (docs/design.md section 6): the mean over prompt templates of the normalised
CLIP text embeddings, normalised again (ULIP practice). Imports only torch, so Hub remote code can use it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

# A prompt ensemble for 3D shapes, after ULIP's ModelNet40 templates.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a point cloud model of {}.",
    "a 3d model of {}.",
    "a 3d object of a {}.",
    "a rendering of a {}.",
    "a 3d rendering of the {}.",
    "a photo of a {}.",
    "there is a {} in the scene.",
    "a model of the {}.",
)


def label_to_text(label: str) -> str:
    """`night_stand` -> `night stand`: dataset class names as words."""
    return label.replace("_", " ").strip()


def encode_class_names(
    get_text_features: Callable[..., torch.Tensor],
    tokenizer,
    class_names: Sequence[str],
    templates: str | Sequence[str] = DEFAULT_TEMPLATES,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Normalised class embeddings `(C, D)`.

    Args:
        get_text_features: `model.get_text_features` of a `DualDenoisingModel` or a `CLIPModel` (an output object
            with `pooler_output`, as transformers 5 returns, is accepted too).
        tokenizer: the teacher's tokenizer.
        class_names: labels; underscores become spaces.
        templates: one template or several with a `{}` where the label goes; several are averaged.
    """
    if not class_names:
        raise ValueError("class_names is empty; give at least one candidate label")
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"every template must contain '{{}}' where the label goes; got {templates}")
    texts = [t.format(label_to_text(name)) for name in class_names for t in templates]
    tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    if device is not None:
        tokens = {k: v.to(device) for k, v in tokens.items()}
    with torch.no_grad():
        out = get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens.get("attention_mask"))
    embeds = out if isinstance(out, torch.Tensor) else out.pooler_output
    embeds = F.normalize(embeds.float(), dim=-1).reshape(len(class_names), len(templates), -1)
    return F.normalize(embeds.mean(dim=1), dim=-1)

"""Zero-shot use of a CLIP teacher: class prompts encoded once, and top-1 of rendered views against them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..prompts import DEFAULT_TEMPLATES, encode_class_names


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
    templates: Sequence[str] = DEFAULT_TEMPLATES,
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
def evaluate_teacher(
    model,
    processor,
    dataset,
    class_names: Sequence[str] | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
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

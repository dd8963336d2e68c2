"""Class embeddings for zero-shot classification (docs/design.md section 6): the mean over prompt templates of the normalised
CLIP text embeddings, normalised again (ULIP practice). Imports only torch, so Hub remote code can use it."""

from __future__ import annotations

import string
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


# the bounds on candidate labels (the README's inputs table): how many, and how long each
MAX_LABELS = 10_000
MAX_LABEL_LENGTH = 200
# prompts per forward pass of the text tower: memory stays flat whatever the number of labels
TEXT_BATCH_SIZE = 256


def normalize_labels(labels, name: str = "candidate_labels") -> list[str]:
    """Candidate labels as the pipeline, the CLI and evaluation take them: a single string is split on commas, a list
    is taken label by label; each label is stripped of surrounding space. A label that is not a string, blank,
    longer than `MAX_LABEL_LENGTH`, contains a comma or is given twice (also as another spelling the model reads the
    same: case, `_` for a space, repeated spaces) is refused with a `ValueError` that says which, and so are more than
    `MAX_LABELS` labels."""
    if isinstance(labels, str):
        labels = labels.split(",")
    elif isinstance(labels, (list, tuple)):
        for i, label in enumerate(labels):
            if not isinstance(label, str):
                raise ValueError(f"{name}[{i}] is {label!r} ({type(label).__name__}); every label must be a string")
            if "," in label:
                raise ValueError(f"{name}[{i}] = {label!r} contains a comma; give each label separately")
    else:
        raise ValueError(f"{name} must be a list of strings (or one comma-separated string); got {type(labels).__name__}")
    labels = [label.strip() for label in labels]
    if not labels or labels == [""]:
        raise ValueError(f"{name} is empty; give the labels to choose from, e.g. ['chair', 'table']")
    blank = [i for i, label in enumerate(labels) if not label]
    if blank:
        raise ValueError(f"{name} has a blank label at position {blank[0]}; remove it")
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{name} has {len(labels)} labels; at most {MAX_LABELS} are taken at once: split the list")
    long = next((label for label in labels if len(label) > MAX_LABEL_LENGTH), None)
    if long is not None:
        raise ValueError(f"{name} has a label of {len(long)} characters ({long[:30]!r}...); at most "
                         f"{MAX_LABEL_LENGTH} are taken: give the class's name, not a description")
    seen: dict[str, str] = {}
    for label in labels:
        key = " ".join(label_to_text(label).lower().split())  # what the model reads, as the tokenizer lowercases
        if key in seen:
            same = "twice" if seen[key] == label else f"as {seen[key]!r} and {label!r}, which the model reads the same"
            raise ValueError(f"{name} gives {label!r} {same}; each label must appear once")
        seen[key] = label
    return labels


def check_templates(templates: str | Sequence[str]) -> tuple[str, ...]:
    """Prompt templates as a tuple; each must hold exactly one `{}` (where the label goes) and no other field."""
    templates = (templates,) if isinstance(templates, str) else tuple(templates)
    if not templates:
        raise ValueError("no prompt template given; pass one with '{}' where the label goes, e.g. 'a 3d model of {}.'")
    for template in templates:
        if not isinstance(template, str):
            raise ValueError(f"a prompt template must be a string; got {template!r}")
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
        except ValueError as err:
            raise ValueError(f"prompt template {template!r} is malformed ({err}); use '{{{{' and '}}}}' for braces") from None
        if fields != [""]:
            raise ValueError(f"prompt template {template!r} must contain exactly one '{{}}' where the label goes "
                             f"and no other field; it has {len(fields)}")
    return templates


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
    templates = check_templates(templates)
    texts = [t.format(label_to_text(name)) for name in class_names for t in templates]
    chunks = []
    for start in range(0, len(texts), TEXT_BATCH_SIZE):  # in batches: memory does not grow with the label count
        tokens = tokenizer(texts[start:start + TEXT_BATCH_SIZE], padding=True, truncation=True, return_tensors="pt")
        if device is not None:
            tokens = {k: v.to(device) for k, v in tokens.items()}
        with torch.no_grad():
            out = get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens.get("attention_mask"))
        chunks.append(F.normalize((out if isinstance(out, torch.Tensor) else out.pooler_output).float(), dim=-1))
    embeds = torch.cat(chunks).reshape(len(class_names), len(templates), -1)
    return F.normalize(embeds.mean(dim=1), dim=-1)

"""A small CLIP teacher trained from scratch on triples, and the frozen-teacher features the 3D model learns from.

Two jobs, in four modules (docs/design.md, section 10): `model` (tokenizer, image processor, the CLIP), `train`,
`zero_shot`, and `features`:

1. `train_teacher`: train a real `transformers.CLIPModel` (a tiny ViT and a tiny text transformer) contrastively on
   the rendered views and captions of a triples dataset, with a byte-level BPE tokenizer learnt from the captions and
   a `CLIPImageProcessor` set to the render size and the data's mean/std. Everything is written with
   `save_pretrained`, so the folder loads through exactly the calls that load `openai/clip-vit-base-patch16`:

       model = CLIPModel.from_pretrained(folder)
       processor = CLIPProcessor.from_pretrained(folder)      # or AutoProcessor / AutoTokenizer

2. `precompute_features` (CLI: `dual-denoising precompute-features`): run any such CLIP (the small teacher or a real
   one) over a triples folder and add the `image_embeds` / `text_embeds` columns.

`zero_shot.encode_class_prompts` and `zero_shot.evaluate_teacher` are the teacher's zero-shot helpers.
"""

from .._lazy import lazy_exports

# submodule -> the names it gives; each is imported on first use (`dual_denoising._lazy`)
_EXPORTS = {
    "features": ["precompute_features", "teacher_fingerprint"],
    "model": [
        "TEACHER_METRICS_FILE", "TeacherConfig", "build_image_processor", "build_teacher_model",
        "train_caption_tokenizer",
    ],
    "train": ["augment_views", "check_teacher_folder", "clip_contrastive_loss", "train_teacher"],
    "zero_shot": ["encode_class_prompts", "evaluate_teacher"],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "TEACHER_METRICS_FILE",
    "check_teacher_folder",
    "TeacherConfig",
    "train_caption_tokenizer",
    "build_image_processor",
    "build_teacher_model",
    "encode_class_prompts",
    "evaluate_teacher",
    "augment_views",
    "clip_contrastive_loss",
    "train_teacher",
    "teacher_fingerprint",
    "precompute_features",
]

"""SynthShapes, the offline world of labelled, rendered and captioned shapes.

- `primitives`: numpy mesh primitives and `MeshBuilder`;
- `furniture`, `vessels`, `objects`: one generator per class, by family (all of them in `classes.GENERATORS`);
- `classes`: the class list, synonyms and captions;
- `render`: the offscreen renderer and contact sheets;
- `synthshapes`: points, shapes, the dataset and `dual-denoising make-synthetic`;
- `scan`: SynthShapes-Scan, the same shapes seen by a virtual depth camera (`make-synthetic --scan VARIANT`).
"""

from .._lazy import lazy_exports

# submodule -> the names it gives; each is imported on first use (`dual_denoising._lazy`)
_EXPORTS = {
    "classes": [
        "CAPTION_TEMPLATES", "CLASS_NAMES", "DEFAULT_UNSEEN_CLASSES", "GENERATORS", "SYNONYMS", "make_captions",
    ],
    "primitives": ["DARK", "FABRIC", "FOLIAGE", "GENERATOR_VERSION", "PALETTE", "SOIL", "MeshBuilder"],
    "render": [
        "DEFAULT_BACKGROUND", "DEFAULT_COLOR", "DEFAULT_LIGHT", "contact_sheet", "look_at_rotation", "rasterize",
        "render_mesh", "render_points", "sample_view_angles",
    ],
    "synthshapes": [
        "DEFAULT_SHAPES_PER_CLASS", "DEFAULT_VIEWS", "build_synthshapes", "generate_mesh", "generate_shape",
        "preview_sheet", "sample_points", "save_synthshapes",
    ],
    "scan": [
        "SCAN_VARIANTS", "build_synthshapes_scan", "depth_scan", "save_synthshapes_scan", "scan_points",
        "scan_preview_sheet", "scan_shape",
    ],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "GENERATOR_VERSION",
    "PALETTE",
    "DARK",
    "SOIL",
    "FOLIAGE",
    "FABRIC",
    "MeshBuilder",
    "GENERATORS",
    "CLASS_NAMES",
    "DEFAULT_UNSEEN_CLASSES",
    "SYNONYMS",
    "CAPTION_TEMPLATES",
    "make_captions",
    "DEFAULT_BACKGROUND",
    "DEFAULT_COLOR",
    "DEFAULT_LIGHT",
    "look_at_rotation",
    "rasterize",
    "render_mesh",
    "render_points",
    "sample_view_angles",
    "contact_sheet",
    "sample_points",
    "generate_mesh",
    "generate_shape",
    "build_synthshapes",
    "preview_sheet",
    "save_synthshapes",
    "DEFAULT_SHAPES_PER_CLASS",
    "DEFAULT_VIEWS",
    "SCAN_VARIANTS",
    "build_synthshapes_scan",
    "depth_scan",
    "save_synthshapes_scan",
    "scan_points",
    "scan_preview_sheet",
    "scan_shape",
]

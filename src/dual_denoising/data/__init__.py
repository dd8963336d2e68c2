"""Data: point/image/text triples as `datasets` folders, point transforms, batching, and importers of real datasets.

- `triples`: the schema (`triples_features`), saving and loading (local folder or Hub id), point transforms, ULIP
  augmentations, seeded rows and the collator;
- `importers` (`dual-denoising import-*`): ModelNet40 (both releases), ScanObjectNN; `shapenet`: ULIP's ShapeNet-55
  triples; `folder`: a folder of files per class; `common`: what they share.
"""

from .._lazy import lazy_exports

# submodule -> the names it gives; each is imported on first use (`dual_denoising._lazy`)
_EXPORTS = {
    "triples": [
        "EMBED_COLUMNS", "METADATA_FILE", "PAD_MODES", "SAMPLE_METHODS", "SELECTIONS", "AXIS_INDEX", "AnyDataset",
        "Compose", "NormalizeToUnitSphere", "PointArray", "PointCloudTransform", "PointTransform", "RandomGenerator",
        "RandomOrientation", "RandomPointDropout", "RandomRotationPerturbation", "RandomScaleAndTranslate", "RandomUpAxisRotation",
        "Resample", "TriplesCollator", "check_dataset_folder", "collate_triples", "dataset_files_written", "is_hub_id", "load_triples", "load_triples_metadata",
        "normalize_points", "portable", "prepare_dataset", "resample_points", "rotation_matrix", "save_triples",
        "triples_features", "ulip_augmentations",
    ],
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "METADATA_FILE",
    "triples_features",
    "save_triples",
    "check_dataset_folder",
    "dataset_files_written",
    "load_triples_metadata",
    "load_triples",
    "PointArray",
    "AXIS_INDEX",
    "SAMPLE_METHODS",
    "PAD_MODES",
    "rotation_matrix",
    "normalize_points",
    "resample_points",
    "PointTransform",
    "Compose",
    "NormalizeToUnitSphere",
    "Resample",
    "RandomPointDropout",
    "RandomScaleAndTranslate",
    "RandomRotationPerturbation",
    "RandomUpAxisRotation",
    "RandomOrientation",
    "ulip_augmentations",
    "EMBED_COLUMNS",
    "PointCloudTransform",
    "AnyDataset",
    "prepare_dataset",
    "SELECTIONS",
    "RandomGenerator",
    "TriplesCollator",
    "collate_triples",
    "is_hub_id",
    "portable",
]

"""The models shipped inside the package: where they are, which is the task's default, and the one loader that turns a
short name, a saved folder or a Hub id into a model and its tokenizer, saying in one line what is missing or wrong.
Core: torch, transformers and the package's own modules only, imported when a model is loaded, so that listing
the shipped models stays fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# The small models shipped in the package, one folder each under pretrained/, addressed by their folder name (a short
# name such as "dual-denoising-tiny"); pretrained/index.json names the task's default and why it was chosen.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def shipped_models() -> dict[str, Path]:
    """`{short name: folder}` of the models shipped in the package (empty where the package data is absent, e.g. in a
    model folder's remote-code copy of this file)."""
    if not PRETRAINED_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(PRETRAINED_DIR.iterdir()) if (p / "config.json").is_file()}


def default_model_name() -> str | None:
    index = PRETRAINED_DIR / "index.json"
    return json.loads(index.read_text())["default"] if index.is_file() else None


def resolve_model(name_or_path: str | Path) -> str:
    """A shipped model's short name -> its folder; anything else (a folder, a Hub id) is returned as it is. An
    existing local folder of the same name wins over the short name."""
    name = str(name_or_path)
    models = shipped_models()
    if name in models and not Path(name).exists():
        return str(models[name])
    return name


def _looks_like_a_path(name: str) -> bool:
    """A Hub id is `owner/name`; anything else (a leading `.`, `/` or `~`, no slash, several) names a local folder."""
    return name.startswith((".", "/", "~", "\\")) or name.count("/") != 1 or "\\" in name


# the files of a model folder through which transformers would import the folder's own Python code
CODE_NAMING_FILES = ("tokenizer_config.json", "processor_config.json", "preprocessor_config.json",
                     "feature_extractor_config.json", "image_processor_config.json")


def _refuse_custom_code(path: Path, name: str) -> None:
    """A folder whose tokenizer or processor files name custom code (`auto_map`) is refused: the loader never runs
    code from a model folder, and never asks whether to. The model's own `auto_map` (this package's code, copied by
    `save_pretrained` for `trust_remote_code` users elsewhere) is not run either: the installed package is used."""
    for file in CODE_NAMING_FILES:
        if not (path / file).is_file():
            continue
        try:
            names_code = "auto_map" in json.loads((path / file).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path / file}: not valid JSON ({err})") from None
        if names_code:
            raise ValueError(f"{name}: its {file} names custom code (auto_map); dual-denoising never runs code from a "
                             "model folder: remove the auto_map entry if the folder is yours, or use another model")


def load_model_and_tokenizer(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """A `DualDenoisingModel` in eval mode and its tokenizer (None when the folder has none), from a shipped model's
    short name, a saved folder or a Hub id. The one loader of the CLI, evaluation and the demo: what is missing or
    wrong is said in one line (`FileNotFoundError`, `ValueError` or `OSError`), and loading never asks a question."""
    from .modeling_dual_denoising import DualDenoisingModel

    name = resolve_model(name_or_path)
    path = Path(name).expanduser()
    local = path.exists()
    if local:
        if not path.is_dir():
            raise ValueError(f"{name} is a file; a model is a folder holding config.json and model.safetensors")
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{name}: no config.json in this folder, so it is not a saved model")
        try:
            model_type = json.loads(config_file.read_text()).get("model_type")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{config_file}: not valid JSON ({err})") from None
        if model_type != "dual_denoising":
            raise ValueError(f"{name} holds a {model_type!r} model, not a Dual Denoising model (model_type "
                             "'dual_denoising'); pass a folder saved by this package")
        if not any(path.glob("*.safetensors")):
            pickled = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt*"))
            if pickled:
                raise ValueError(f"{name}: the weights are in {pickled[0]}, a pickle (loading one can run code); "
                                 "dual-denoising reads only safetensors: load it yourself if you trust it and save it "
                                 "again with save_pretrained (which writes model.safetensors)")
            raise FileNotFoundError(f"{name}: no model.safetensors in this folder (the weights are missing)")
        _refuse_custom_code(path, name)
    elif _looks_like_a_path(name) or Path(name.split("/")[0]).expanduser().is_dir():  # `runs/x` where runs/ is here
        shipped = ", ".join(shipped_models()) or "none"
        raise FileNotFoundError(f"{name}: no such model folder, and not a shipped model's short name ({shipped})")
    try:
        model = DualDenoisingModel.from_pretrained(path if local else name)
    except OSError as err:
        raise OSError(f"{name}: cannot load the model ({str(err).splitlines()[0]})") from None
    except Exception as err:  # safetensors raises its own error type for a truncated or damaged file
        raise OSError(f"{name}: the weights cannot be read ({type(err).__name__}: {str(err).splitlines()[0]}); "
                      "the file is truncated or damaged: save or download the model again") from None
    return model.to(device).eval(), load_tokenizer(name)


def load_tokenizer(name_or_path: str | Path):
    """The tokenizer saved with a model: from a local folder (None when it holds none, as a folder written by
    `DualDenoisingModel.save_pretrained` alone) or a Hub id (None when it cannot be had). Never runs code: a folder
    whose tokenizer files name custom code is refused (`ValueError`)."""
    from transformers import AutoTokenizer

    name = str(name_or_path or "")
    if not name:  # a model built in memory names no folder
        return None
    path = Path(name).expanduser()
    local = path.is_dir()
    if local:
        _refuse_custom_code(path, name)
        if not ((path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()):
            return None
    try:
        return AutoTokenizer.from_pretrained(path if local else name, trust_remote_code=False)
    except (OSError, ValueError) as err:
        if local:
            raise ValueError(f"{name}: the tokenizer files cannot be read ({str(err).splitlines()[0]})") from None
        return None


_default_name = default_model_name()
# The task's default model (chosen by scripts/build_shipped_models.py; the README's "Shipped models" states the rule).
DEFAULT_MODEL_DIR = PRETRAINED_DIR / _default_name if _default_name else None


def shipped_model_classes() -> list[str]:
    """The classes the shipped default model was trained on (its candidate labels for SynthShapes)."""
    meta = DEFAULT_MODEL_DIR / "metadata.json" if DEFAULT_MODEL_DIR is not None else None
    if meta is None or not meta.is_file():
        raise FileNotFoundError(f"the shipped default is missing ({meta or PRETRAINED_DIR}); rebuild it with python "
                                "scripts/build_shipped_models.py")
    return json.loads(meta.read_text())["classes"]

"""A web demo (Gradio): upload a shape or pick a SynthShapes sample, see the cloud the model sees in 3D, classify it
with the shipped models side by side, and attack it with adaptive PGD-Linf.

    dual-denoising serve [--model NAME_OR_PATH] [--host 127.0.0.1] [--port 7860]
    python examples/app.py                                   # the same app, Space-style

Everything runs offline on the shipped models: no analytics, no remote fonts or scripts (the theme uses system
fonts; Gradio bundles its own scripts and plotly.js). Bad uploads get the same one-line errors as the command line,
shown in the page, never a stack trace. Needs the `demo` extra: `pip install 'dual-denoising[demo]'`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

GALLERY_CLASSES = ("airplane", "chair", "table", "lamp", "guitar", "cup", "cone", "sofa")
GALLERY_SEED = 2026  # a SynthShapes seed the shipped models never trained on
BASELINE = "ulip-tiny"
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, OSError)
MAX_UPLOAD_BYTES = 64 * 1024 ** 2  # an upload larger than this is refused by the server before it is stored
_OWN_TEMP_DIRS: list[str] = []  # the GRADIO_TEMP_DIR values this module set (a user's own setting is left alone)


def _own_folder() -> Path:
    """A new folder of this app's own (mode 0700, a fresh name: nothing planted there can be followed) for its
    gallery and the uploads, removed when the process ends."""
    folder = Path(tempfile.mkdtemp(prefix="dual-denoising-demo-"))
    atexit.register(shutil.rmtree, folder, True)
    if os.environ.get("GRADIO_TEMP_DIR") in (None, "", *_OWN_TEMP_DIRS):  # Gradio stores uploads there
        os.environ["GRADIO_TEMP_DIR"] = str(folder / "uploads")
        _OWN_TEMP_DIRS.append(os.environ["GRADIO_TEMP_DIR"])
    return folder


def _page_error(err: Exception, path: str | None) -> str:
    """The one-line message for the page: the upload's server-side folder never shows, only the file's name."""
    message = str(err)
    if path:
        message = message.replace(str(Path(path).parent) + os.sep, "").replace(str(Path(path).parent), ".")
    return message


def _gallery(folder: Path) -> dict[str, Path]:
    """A few SynthShapes meshes as .ply files (written once), keyed by a readable name."""
    from .synth import generate_mesh

    folder.mkdir(parents=True, exist_ok=True)
    samples = {}
    for name in GALLERY_CLASSES:
        path = folder / f"{name}.ply"
        if not path.exists():
            mesh, _ = generate_mesh(name, index=0, seed=GALLERY_SEED)
            mesh.export(path)
        samples[f"{name} (SynthShapes sample)"] = path
    return samples


class DemoModels:
    """The models the page compares, loaded once, with their tokenizers and cached class embeddings."""

    def __init__(self, names: list[str]):
        from .shipped import load_model_and_tokenizer

        self.models = {}
        for name in names:
            model, tokenizer = load_model_and_tokenizer(name)
            if tokenizer is None or model.text_model is None:
                raise ValueError(f"{name}: the demo needs a model with its text tower and tokenizer")
            self.models[Path(name).name] = (model, tokenizer)
        self._class_embeds: dict[tuple, object] = {}

    def class_embeds(self, name: str, labels: tuple[str, ...]):
        from .prompts import encode_class_names

        key = (name, labels)
        if key not in self._class_embeds:
            model, tokenizer = self.models[name]
            self._class_embeds[key] = encode_class_names(model.get_text_features, tokenizer, list(labels))
        return self._class_embeds[key]

    def prepare(self, name: str, path: str, up_axis: str):
        from .fileio import load_points
        from .pipeline_dual_denoising import prepare_point_cloud

        config = self.models[name][0].config.point_config
        return prepare_point_cloud(load_points(path), config.num_points, max(config.group_size, config.num_groups),
                                   config.in_channels, source=Path(path).name, up_axis=up_axis)

    def feature_kwargs(self, name: str, chains: int, steps: int) -> dict:
        model = self.models[name][0]
        return {"num_noise_samples": int(chains), "num_inference_steps": int(steps)} \
            if model.config.objective == "dual_denoising" else {}

    def scores(self, name: str, cloud, labels: tuple[str, ...], chains: int, steps: int) -> dict[str, float]:
        import torch

        model = self.models[name][0]
        with torch.no_grad():
            logits = model.zero_shot_logits(cloud[None], self.class_embeds(name, labels),
                                            generator=[torch.Generator().manual_seed(0)],
                                            **self.feature_kwargs(name, chains, steps))
        return dict(zip(labels, logits.softmax(-1)[0].tolist()))


def _cloud_figure(cloud, title: str, color=None, color_title: str | None = None):
    import plotly.graph_objects as go

    xyz = np.asarray(cloud)[:, :3]
    marker = dict(size=2, color=xyz[:, 1] if color is None else color, colorscale="Viridis" if color is None else "Hot",
                  showscale=color is not None, colorbar=dict(title=color_title) if color is not None else None)
    # the models read clouds Y-up: show y as the vertical axis
    figure = go.Figure(go.Scatter3d(x=xyz[:, 0], y=xyz[:, 2], z=xyz[:, 1], mode="markers", marker=marker))
    figure.update_layout(title=title, margin=dict(l=0, r=0, t=30, b=0), height=380,
                         scene=dict(aspectmode="data", xaxis_title="x", yaxis_title="z", zaxis_title="y (up)"))
    return figure


def _labels(text: str) -> tuple[str, ...]:
    from .prompts import normalize_labels

    return tuple(normalize_labels(text, name="labels"))


def _attack_table(rows: list, eps: float, pgd_steps: int, eot: int) -> str:
    """The attack's result as Markdown: each model's top label and score before and after."""
    lines = [f"Adaptive PGD-Linf, eps {eps}, {int(pgd_steps)} steps, EOT {int(eot)} (models with noise); "
             f"the attack pushes away from **{rows[0][1]}**.", "",
             "| model | before | after |", "|---|---|---|"]
    for name, _, before, after in rows:
        top_before, top_after = max(before, key=before.get), max(after, key=after.get)
        lines.append(f"| {name} | {top_before} ({before[top_before]:.2f}) | {top_after} ({after[top_after]:.2f}) |")
    return "\n".join(lines)


def build_app(model_names: list[str] | None = None, gallery_dir: str | Path | None = None):
    """The Gradio Blocks app comparing `model_names` (default: the shipped default and the plain baseline)."""
    import gradio as gr

    from .pipeline_dual_denoising import SEARCHED_UP_AXES, UP_AXES
    from .shipped import DEFAULT_MODEL_DIR, shipped_model_classes, shipped_models

    if model_names is None:
        model_names = [DEFAULT_MODEL_DIR.name] + ([BASELINE] if BASELINE in shipped_models() and
                                               DEFAULT_MODEL_DIR.name != BASELINE else [])
    folder = _own_folder()
    models = DemoModels(model_names)
    names = list(models.models)
    gallery = _gallery(Path(gallery_dir) if gallery_dir else folder / "gallery")
    default_labels = ", ".join(shipped_model_classes())
    choices = names + (["both side by side"] if len(names) > 1 else [])

    def chosen(which: str) -> list[str]:
        return names if which == "both side by side" else [which]

    def source(upload, sample) -> str:
        if upload is not None:
            return upload if isinstance(upload, str) else upload.name
        if sample:
            return str(gallery[sample])
        raise ValueError("no shape given: upload a point or mesh file, or pick a sample")

    def classify(upload, sample, up_axis, labels_text, which, chains, steps):
        path = None
        try:
            path = source(upload, sample)
            labels = _labels(labels_text)
            shown = chosen(which)
            clouds = {name: models.prepare(name, path, up_axis) for name in shown}  # read and prepared once each
            results = [models.scores(name, clouds[name], labels, chains, steps) for name in shown]
            cloud = clouds[shown[0]]
        except USER_ERRORS as err:
            raise gr.Error(_page_error(err, path)) from None
        outputs = [gr.update(value=r, label=f"{n}", visible=True) for n, r in zip(shown, results)]
        outputs += [gr.update(visible=False)] * (2 - len(outputs))
        figure = _cloud_figure(cloud, f"what the model sees: {len(cloud)} points, unit sphere, Y-up")
        return [figure, *outputs]

    def attack(upload, sample, up_axis, labels_text, which, chains, steps, eps, pgd_steps, eot,
               progress=gr.Progress()):
        import torch

        from .evaluation.attacks import PGDLinf, ZeroShotClassifier

        path = None
        try:
            path = source(upload, sample)
            labels = _labels(labels_text)
            shown = chosen(which)
            truth = Path(path).stem if Path(path).stem in labels else None
            rows, figure = [], None
            for i, name in enumerate(shown):
                progress(i / len(shown), desc=f"attacking {name}")
                model = models.models[name][0]
                cloud = models.prepare(name, path, up_axis)
                classifier = ZeroShotClassifier(model, models.class_embeds(name, labels),
                                                **models.feature_kwargs(name, chains, steps))
                before = models.scores(name, cloud, labels, chains, steps)
                target = truth or max(before, key=before.get)  # attack the true label, or the clean prediction
                label = torch.tensor([labels.index(target)])
                pgd = PGDLinf(eps=float(eps), steps=int(pgd_steps), eot_samples=int(eot))
                adversarial = pgd(classifier, cloud[None], label)[0]
                after = models.scores(name, adversarial, labels, chains, steps)
                displacement = (adversarial - cloud)[:, :3].norm(dim=-1).numpy()
                rows.append((name, target, before, after))
                if figure is None:
                    figure = _cloud_figure(adversarial, f"{name}: perturbed cloud (PGD-Linf eps {eps})",
                                           color=displacement, color_title="displacement")
            progress(1.0, desc="done")
        except USER_ERRORS as err:
            raise gr.Error(_page_error(err, path)) from None
        return figure, _attack_table(rows, eps, pgd_steps, eot)

    # uploads older than an hour are deleted every hour; the whole folder goes when the process ends
    with gr.Blocks(title="Dual Denoising: zero-shot 3D classification", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# Dual Denoising: zero-shot 3D classification\nUpload a point cloud or mesh "
                    "(.ply .obj .off .stl .glb .npy .npz .xyz .txt .pts .csv, at most "
                    f"{MAX_UPLOAD_BYTES // 1024 ** 2} MB) or pick a sample; classify it with the shipped models, then "
                    "attack it.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="shape file", elem_id="upload")
                sample = gr.Dropdown(list(gallery), value=None, label="or a sample", elem_id="sample")
                # the axis the file was written in (the page classifies one reading; the search is the pipeline's)
                up_axis = gr.Radio([a for a in UP_AXES if a not in SEARCHED_UP_AXES], value="y",
                                   label="up axis of the file")
                labels = gr.Textbox(default_labels, label="candidate labels (comma-separated)", lines=3)
                which = gr.Radio(choices, value=choices[-1], label="model")
                with gr.Row():
                    chains = gr.Slider(1, 8, value=models.models[names[0]][0].config.num_noise_samples, step=1,
                                       label="K chains (Dual Denoising)")
                    steps = gr.Slider(1, 10, value=models.models[names[0]][0].config.num_inference_steps, step=1,
                                      label="S steps (Dual Denoising)")
                classify_button = gr.Button("Classify", variant="primary", elem_id="classify")
                with gr.Row():
                    eps = gr.Slider(0.005, 0.05, value=0.02, step=0.005, label="attack eps (PGD-Linf)")
                    pgd_steps = gr.Slider(5, 50, value=10, step=5, label="attack steps")
                    eot = gr.Slider(1, 8, value=2, step=1, label="EOT draws")
                attack_button = gr.Button("Attack", elem_id="attack")
            with gr.Column(scale=2):
                plot = gr.Plot(label="3D view", elem_id="view")
                with gr.Row():
                    first = gr.Label(num_top_classes=5, label=names[0], elem_id="scores-0")
                    second = gr.Label(num_top_classes=5, label=names[-1], elem_id="scores-1", visible=len(names) > 1)
                attack_result = gr.Markdown(elem_id="attack-result")
        inputs = [upload, sample, up_axis, labels, which, chains, steps]
        classify_button.click(classify, inputs, [plot, first, second], api_name="classify")
        attack_button.click(attack, inputs + [eps, pgd_steps, eot], [plot, attack_result], api_name="attack")
    return demo


def launch(demo, host: str = "127.0.0.1", port: int | None = None, **kwargs):
    """Start the server (offline: no analytics, no share link); returns what `Blocks.launch` returns."""
    import gradio as gr

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # system fonts: nothing fetched from the web
    return demo.launch(server_name=host, server_port=port, share=False, theme=theme, show_error=False,
                       max_file_size=MAX_UPLOAD_BYTES, **kwargs)



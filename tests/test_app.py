"""The web demo, in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright) against
the app served on 127.0.0.1; and its API through `gradio_client`. Screenshots go to outputs/test-screenshots/.
`.ci/run` installs Chromium when it is missing and sets DD_REQUIRE_BROWSER=1, so there a missing browser fails."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

gr = pytest.importorskip("gradio", reason="the demo extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "outputs" / "test-screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from dual_denoising.app import build_app, launch

    demo = build_app(gallery_dir=tmp_path_factory.mktemp("gallery"))
    port = _free_port()
    launch(demo, port=port, prevent_thread_lock=True, quiet=True)
    yield demo, f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("DD_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A page that records every request and refuses any that would leave this machine."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.outside_requests = []

    def route(request_route):
        host = urlparse(request_route.request.url).hostname
        if host in ("127.0.0.1", "localhost", None) or request_route.request.url.startswith(("data:", "blob:")):
            request_route.continue_()
        else:
            page.outside_requests.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(server[1])
    page.wait_for_selector("#classify", timeout=60_000)
    yield page
    assert page.outside_requests == [], f"the page tried to reach other machines: {page.outside_requests[:5]}"
    page.close()


def _mesh(tmp_path: Path, name: str = "airplane") -> Path:
    from dual_denoising.synth import generate_mesh

    mesh, _ = generate_mesh(name, index=1, seed=7070)
    path = tmp_path / f"{name}.ply"
    mesh.export(path)
    return path


def test_upload_a_ply_and_classify(page, server, tmp_path):
    from transformers import pipeline

    from dual_denoising.shipped import shipped_model_classes

    path = _mesh(tmp_path)
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.wait_for_timeout(500)
    page.locator("#classify").click()
    top = page.locator("#scores-0 .output-class")
    top.wait_for(timeout=120_000)
    page.locator("#view .js-plotly-plot .scatterlayer, #view .js-plotly-plot canvas").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)  # WebGL draws after the element exists
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "classify.png"), full_page=True)
    expected = pipeline("zero-shot-3d-classification")(str(path), candidate_labels=shipped_model_classes())[0]["label"]
    assert top.inner_text().strip() == expected


def test_attack_a_sample_shows_both_predictions(page, server):
    from dual_denoising.app import GALLERY_CLASSES

    page.locator("#sample input").click()
    page.get_by_role("option", name=f"{GALLERY_CLASSES[0]} (SynthShapes sample)").click()
    page.locator("#attack").click()
    table = page.locator("#attack-result table")
    table.wait_for(timeout=300_000)
    page.locator("#view .js-plotly-plot canvas").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1500)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "attack.png"), full_page=True)
    rows = [[c.strip() for c in row.split("\t")] for row in table.inner_text().strip().splitlines()[1:]]
    # every model of the page's default choice (the default and the plain baseline, side by side) has a row with a
    # prediction before and after the attack
    assert [row[0] for row in rows] == _models(server)
    for row in rows:
        assert len(row) == 3 and "(" in row[1] and "(" in row[2], row


def test_bad_upload_is_a_message_not_a_trace(page, tmp_path):
    garbage = tmp_path / "broken.ply"
    garbage.write_bytes(os.urandom(300))
    page.locator("#upload input[type=file]").set_input_files(str(garbage))
    page.wait_for_timeout(500)
    page.locator("#classify").click()
    # the file reader's one-line message (the upload's own name also shows in the file box, so match the reason)
    toast = page.get_by_text("cannot be read as a .ply file", exact=False).first
    toast.wait_for(timeout=60_000)
    assert "broken.ply" in toast.inner_text()
    assert "Traceback" not in page.content()
    assert os.environ["GRADIO_TEMP_DIR"] not in toast.inner_text()  # the server's folders never show


def test_uploads_are_bounded_and_kept_in_the_apps_own_folder(server, tmp_path):
    """An upload over MAX_UPLOAD_BYTES is refused by the server; uploads go to a folder the app created (fresh name,
    mode 0700, removed when the process ends), never to a fixed temp path."""
    from gradio_client import Client, handle_file

    from dual_denoising.app import MAX_UPLOAD_BYTES

    demo, url = server
    assert demo.max_file_size == MAX_UPLOAD_BYTES
    big = tmp_path / "big.npy"
    with big.open("wb") as f:
        f.truncate(MAX_UPLOAD_BYTES + 1)
    with pytest.raises(Exception, match="(?i)size|large"):
        Client(url, verbose=False).predict(handle_file(str(big)), None, "y", "a, b", _models(server)[0], 1, 1,
                                           api_name="/classify")
    uploads = Path(os.environ["GRADIO_TEMP_DIR"])
    assert uploads.parent.name.startswith("dual-denoising-demo-") and (uploads.parent.stat().st_mode & 0o077) == 0
    assert not any(p.name == "big.npy" for p in uploads.rglob("*"))


def test_the_apps_folder_is_removed_when_it_stops(tmp_path):
    import subprocess
    import sys

    code = ("import os; from dual_denoising.app import build_app; build_app(); "
            "print(os.environ['GRADIO_TEMP_DIR'])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "GRADIO_TEMP_DIR": "", "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    folder = Path(run.stdout.strip().splitlines()[-1]).parent
    assert folder.name.startswith("dual-denoising-demo-") and not folder.exists()


def test_the_api_through_gradio_client(server, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server[1], verbose=False)
    default = _models(server)[0]
    _, first, _ = client.predict(handle_file(str(_mesh(tmp_path, "guitar"))), None, "y", "guitar, chair, lamp",
                                 default, 1, 1, api_name="/classify")
    assert first["value"]["label"] in ("guitar", "chair", "lamp")
    with pytest.raises(Exception, match="no shape given"):
        client.predict(None, None, "y", "a, b", default, 1, 1, api_name="/classify")


def _models(server) -> list[str]:
    """The models the page compares by default: the shipped default, then the plain baseline when it is shipped."""
    from dual_denoising.app import BASELINE
    from dual_denoising.shipped import DEFAULT_MODEL_DIR, shipped_models

    names = [DEFAULT_MODEL_DIR.name]
    if BASELINE in shipped_models() and BASELINE != DEFAULT_MODEL_DIR.name:
        names.append(BASELINE)
    return names


def test_every_up_axis_the_page_offers_reads_a_file(server, tmp_path):
    """The radio's choices are the file axes the page can read (the pipeline's searches, "auto" and "pca", are not
    offered), and each one classifies through the API."""
    from gradio_client import Client, handle_file

    demo = server[0]
    radios = [c for c in demo.config["components"] if c.get("type") == "radio"
              and c["props"].get("label") == "up axis of the file"]
    offered = [choice[0] if isinstance(choice, (list, tuple)) else choice for choice in radios[0]["props"]["choices"]]
    assert offered == ["y", "z", "x"]
    client, mesh = Client(server[1], verbose=False), handle_file(str(_mesh(tmp_path, "chair")))
    for axis in offered:
        _, first, _ = client.predict(mesh, None, axis, "chair, lamp", _models(server)[0], 1, 1, api_name="/classify")
        assert first["value"]["label"] in ("chair", "lamp")

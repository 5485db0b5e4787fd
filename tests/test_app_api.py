"""The app launched locally (headless) and driven through its API with ``gradio_client``, as a
remote program would: both flows end to end on real faces, and several concurrent sessions that
must not see each other's uploads or models."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.client import Endpoint

import app

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "sklearn_data" / "lfw_home" / "lfw_funneled"
PEOPLE = ("Tony_Blair", "Colin_Powell", "Gerhard_Schroeder")  # not among the small workspace's identities is not required


def photo(person: str, k: int) -> Path:
    return LFW / person / f"{person}_{k:04d}.jpg"


def stored_photos(folder: Path) -> list[Path]:
    """Non-empty files under ``folder`` (Gradio's multipart parser leaves empty ``tmp*`` files behind),
    other than Gradio's copies of the example portraits (gallery photos the app offers, no upload)."""
    examples = {Path(p[0]).name for p in app.example_portraits(app.SETTINGS)[0]}
    return [p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 0 and p.name not in examples]


def forget_me(client: Client, person: str, n_extras: int = 0) -> tuple:
    extras = [handle_file(str(photo(person, k))) for k in range(2, 2 + n_extras)]
    return client.predict(handle_file(str(photo(person, 1))), extras, "projection", 3, False, "", api_name="/forget_me")


def test_example_portraits_are_held_out_gallery_photos(server):
    paths, labels = app.example_portraits(app.SETTINGS)
    assert len(paths) == 4 and all(label.startswith("Try it as ") for label in labels)
    assert all(Path(p[0]).is_file() and LFW in Path(p[0]).parents for p in paths)


def test_api_lists_both_flows(server):
    client = Client(server[0], verbose=False)
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/forget_me", "/audit", "/audit_models", "/audit_attributes", "/session_info"} <= set(endpoints)


def test_forget_me_end_to_end(server):
    url, uploads = server
    client = Client(url, verbose=False)
    status, crop, metrics, bars, before, after, privacy, download = forget_me(client, "Tony_Blair", n_extras=3)
    assert status.startswith("✅"), status
    assert "augmented views" not in status  # three extra photos: one enrolled, two check photos (a real check)
    assert "We found" in crop and crop.count("data:image/jpeg;base64") >= 2  # the aligned portrait, then what was found
    assert "<table" in metrics and "you" in metrics and "retain" in metrics
    assert bars is not None
    for gallery in (before, after):
        assert gallery.count('class="uc-query"') == 2 and "uc-hit" in gallery
    assert "Membership inference" in privacy
    assert 'download="forget-me-report.json"' in download and 'download="forget-me-report.html"' in download
    info = client.predict(api_name="/session_info")
    assert info["portrait_sha256"] == hashlib.sha256(photo("Tony_Blair", 1).read_bytes()).hexdigest()
    assert stored_photos(uploads) == [], "the uploads must be read into memory and deleted from Gradio's upload folder"


def test_concurrent_sessions_are_isolated(server):
    url, uploads = server
    clients = [Client(url, verbose=False) for _ in PEOPLE]
    with ThreadPoolExecutor(len(PEOPLE)) as pool:
        results = list(pool.map(forget_me, clients, PEOPLE))
        infos = list(pool.map(lambda c: c.predict(api_name="/session_info"), clients))
    for person, result, info in zip(PEOPLE, results, infos):
        assert result[0].startswith("✅"), result[0]
        assert info["portrait_sha256"] == hashlib.sha256(photo(person, 1).read_bytes()).hexdigest()
    assert len({info["model_sha256"] for info in infos}) == len(PEOPLE), "each session must hold its own model"
    # each session's result shows its own face only: the query thumbnails differ between sessions
    queries = [re.search(r'class="uc-query"[^>]*><img src="([^"]+)"', result[4]).group(1) for result in results]
    assert len(set(queries)) == len(PEOPLE)
    assert Client(url, verbose=False).predict(api_name="/session_info") == {"empty": True}
    assert stored_photos(uploads) == []


def few_photos_zip(path: Path, n_people: int = 10, per_person: int = 5) -> Path:
    """A reviewer's own gallery as a zip: ``n_people`` AT&T faces, ``per_person`` photos each."""
    att = ROOT.parent / "shared" / "faces" / "att_faces"
    with zipfile.ZipFile(path, "w") as archive:
        for person in sorted((p for p in att.iterdir() if p.is_dir()), key=lambda p: int(p.name[1:]))[:n_people]:
            for photo in sorted(person.glob("*.pgm"))[:per_person]:
                archive.write(photo, f"{person.name}/{photo.name}")
    return path


@pytest.fixture
def uploads_once(monkeypatch):
    """Make a client upload each local file once and then resend the server's path, as the browser
    does when a button is pressed again: the second run finds Gradio's file already deleted."""
    uploaded: dict[str, dict] = {}
    upload = Endpoint._upload_file

    def once(self, f: dict, data_index: int) -> dict:
        if f["path"] not in uploaded:
            uploaded[f["path"]] = upload(self, f, data_index)
        return uploaded[f["path"]]

    monkeypatch.setattr(Endpoint, "_upload_file", once)
    return uploaded


def test_both_flows_run_again_with_the_same_uploads(server, uploads_once, tmp_path):
    url, uploads = server
    client = Client(url, verbose=False)
    for _ in range(2):
        status = forget_me(client, "Colin_Powell", n_extras=3)[0]
        assert status.startswith("✅"), status
    assert stored_photos(uploads) == [], "Gradio's copies are deleted at once; the bytes live in the session's memory"
    assert client.predict(api_name="/session_info")["uploads"] == {"forget_me": 4}
    gallery = handle_file(str(few_photos_zip(tmp_path / "gallery.zip")))
    for with_retrain in (False, True):  # a gallery with 5 photos per person: the zip default (4) admits everyone
        # the retrain reference is trained after the zip's temporary folder is gone: the workspace works from memory
        status, _table, *_ = client.predict("Uploaded zip", gallery, "", 3, 24, 0, 0, ["dispersion"], 3, "", False, with_retrain, [],
                                           api_name="/audit")
        assert status.startswith("✅") and "Audit of 3 identities on zip" in status, status
    assert client.predict(api_name="/session_info")["uploads"] == {"forget_me": 4, "audit": 1}
    assert len(uploads_once) == 5 and stored_photos(uploads) == []


def test_audit_side_by_side(server):
    client = Client(server[0], verbose=False)
    status, table, tsne, umap, roc, galleries, privacy, download = client.predict(
        "LFW", None, "", 4, 24, 0, 0, ["dispersion", "hard_dispersion"], 3, "", False, True, ["t-SNE"], api_name="/audit")
    assert status.startswith("✅"), status
    for column in ("before", "retrain", "dispersion", "hard_dispersion", "Δ dispersion − before"):
        assert f">{column}</th>" in table
    assert 'title="Mean average precision' in table, "each metric explains itself on hover"
    assert tsne is not None and umap is None
    assert roc is not None, "the privacy audit's ROC curves should be drawn"
    assert galleries.count("<h4>") == 3  # before + one per method
    assert privacy.count('<table class="uc-table uc-privacy-table">') == 2  # one per method
    for attack in ("shokri", "salun", "embedding", "rmia"):
        assert f"<b>{attack}</b>: " in privacy
    assert "Streisand" in privacy and "alarming" in privacy
    assert 'download="audit-report.html"' in download


def test_starts_without_any_gallery_and_says_how_to_get_one(tmp_path, monkeypatch, free_tcp_port_factory):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path))  # an empty scikit-learn data folder, offline
    assert app.available_galleries() == []
    monkeypatch.setattr(app, "SETTINGS", app.SETTINGS)  # launch() replaces it; restored afterwards
    demo, url = app.launch(app.AppSettings(port=free_tcp_port_factory(), warmup=False), block=False)
    try:
        banner = [c["props"]["value"] for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "no-gallery"]
        assert banner and "SCIKIT_LEARN_DATA" in banner[0] and "zip" in banner[0]
        assert "/forget_me" in Client(url, verbose=False).view_api(return_format="dict", print_info=False)["named_endpoints"]
    finally:
        demo.close()


def test_audit_tab_starts_from_the_measured_preset_and_says_why(server):
    client = Client(server[0], verbose=False)
    parameters = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/audit"]["parameters"]
    defaults = {p["parameter_name"]: p.get("parameter_default") for p in parameters}
    assert defaults["methods"] == ["dispersion"] and defaults["iterations"] == 3  # the fixture's audit_iterations
    assert app._params(defaults["params"]) == {"dispersion": app.preset_params("dispersion", "retain-preserving")}
    props = {c["props"].get("elem_id"): c["props"] for c in client.config["components"] if c.get("props", {}).get("elem_id")}
    assert props["au-preset"]["value"] == app.AUDIT_PRESET
    assert app.AUDIT_PRESET in props["au-preset-note"]["value"] and "measured on a CPU" in props["au-preset-note"]["value"]
    assert app.AppSettings().audit_iterations == 1000 and app.AppSettings().iterations == 40  # Forget me keeps its own


@pytest.mark.fast
def test_presets_fill_method_and_parameters():
    choice = next(c for c in app.preset_choices() if c.startswith("dispersion" + app.PRESET_SEPARATOR))
    method, params = app.apply_preset(choice, "gradient_ascent")
    assert method == "dispersion" and app._params(params) == app.preset_params("dispersion", "retain-preserving")
    assert app.apply_preset(app.DEFAULTS, "ssd") == ("ssd", "")
    methods, params = app.apply_audit_preset(choice, ["ssd"])
    assert methods == ["dispersion", "ssd"] and app._params(params) == {"dispersion": app.preset_params("dispersion", "retain-preserving")}


@pytest.mark.fast
def test_settings_precedence_flags_then_gradio_env_then_unlearn_env(monkeypatch):
    for variable in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "UNLEARN_HOST", "UNLEARN_PORT"):
        monkeypatch.delenv(variable, raising=False)
    settings = lambda *argv: app.AppSettings.from_env_and_args(list(argv))
    assert (settings().host, settings().port) == ("127.0.0.1", 7860)
    monkeypatch.setenv("UNLEARN_HOST", "10.1.2.3")
    monkeypatch.setenv("UNLEARN_PORT", "7001")
    assert (settings().host, settings().port) == ("10.1.2.3", 7001)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7002")
    assert (settings().host, settings().port) == ("0.0.0.0", 7002)
    assert (settings("--host", "127.0.0.1", "--port", "7003").host, settings("--port", "7003").port) == ("127.0.0.1", 7003)


def test_app_listens_where_gradio_environment_says(tmp_path, free_tcp_port_factory):
    """``python app.py`` started as Hugging Face Spaces starts it: Gradio's variables (with SPACE_ID
    set) choose the address, over the app's own UNLEARN_PORT."""
    port = free_tcp_port_factory()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "SPACE_ID": "test/forget-me",
           "UNLEARN_PORT": str(free_tcp_port_factory()), "UNLEARN_WARMUP": "0", "GRADIO_ANALYTICS_ENABLED": "False",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    log = tmp_path / "app.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"the app exited ({server.returncode}):\n{log.read_text()}"
            assert time.monotonic() < deadline, f"nothing answered on port {port}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    assert response.status == 200 and b"Forget me" in response.read()
                    break
            except OSError:
                time.sleep(1)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_audit_uploaded_models(server, lfw_workspace, uploads_once, tmp_path):
    """A reviewer uploads a before/after pair (this project's models, exported to TorchScript) and
    gets ``audit``'s numbers for them, twice with the same uploads; a wrong spec is one message."""
    from unlearn_core.backbones.external import EmbedderSpec, export_embedder
    from unlearn_core.pipeline import AuditConfig, run_method

    url, uploads = server
    ws = lfw_workspace
    unlearned, result = run_method(ws, AuditConfig(method="projection", workspace=ws.config))
    files = {}
    for role, model in (("before", ws.original), ("after", unlearned)):
        (tmp_path / f"{role}.pt").write_bytes(export_embedder(model, ws.backbone.inputs))
        files[role] = handle_file(str(tmp_path / f"{role}.pt"))
    spec = json.dumps(EmbedderSpec.from_backbone(ws.backbone).to_json())
    client = Client(url, verbose=False)
    for _ in range(2):
        status, table, _tsne, _umap, _roc, galleries, findings, download = client.predict(
            "LFW", None, "", 4, 24, 0, 0, files["before"], files["after"], None, spec, api_name="/audit_models")
        assert status.startswith("✅") and "before torchscript (128-D), after torchscript (128-D)" in status, status
        for value in (ws.baseline()["forget"]["mAP"], result["after"]["forget"]["mAP"]):  # audit's own numbers
            assert f"<td>{round(value, 4)}</td>" in table
        assert galleries.count("<h4>") == 2 and "Without a reference model" in findings and "model-audit.json" in download
    assert client.predict(api_name="/session_info")["uploads"] == {"models": 2}
    assert stored_photos(uploads) == [], "the checkpoints live in the session's memory, not on disk"
    status, *_ = client.predict("LFW", None, "", 4, 24, 0, 0, files["before"], files["after"], None, '{"input_size": 112}', api_name="/audit_models")
    assert status.startswith("⚠️") and "needs 'template'" in status


def test_audit_attributes_on_lfw(server):
    """The Audit tab's attribute option (S3's multi-label task) on the small LFW workspace, 2 training
    epochs: S3's weight pruning and the gradient-ascent baseline, real training and unlearning."""
    client = Client(server[0], verbose=False)
    common = ("LFW", None, "", 4, 24, 0, 0)
    # neutral failed the pseudo-label consistency check on this workspace (only male and happy pass)
    for attribute, methods, params, message in (("neutral", ["weight_pruning"], "", "unusable attribute 'neutral': usable ['male', 'happy']"),
                                                ("male", [], "", "choose at least one"),
                                                ("male", ["finetune"], '{"finetune": {"iterations": 0}}', "finetune: iterations must be in")):
        status, table, figure, privacy, download, _ = client.predict(*common, attribute, methods, 2, params, api_name="/audit_attributes")
        assert status.startswith("⚠️") and message in status and "Traceback" not in status, status
        assert table == "" and figure is None
    status, table, figure, privacy, download, attribute = client.predict(*common, "male", ["weight_pruning", "gradient_ascent"], 2, "",
                                                                         api_name="/audit_attributes")
    assert status.startswith("✅") and "Forgot 'male'" in status and "pseudo-labels" in status, status
    for column in ("before", "retrain", "weight_pruning", "gradient_ascent"):
        assert f">{column}</th>" in table
    assert "<td>male (forgotten)</td>" in table and "(kept)</td>" in table
    for row in ("AIA (probe balanced accuracy)", "MIA AUC (training vs test photos)", "entropy of the forgotten output (bits)",
                "speed-up vs retrain"):
        assert f"<td>{row}</td>" in table
    assert figure is not None
    traces = json.loads(figure["plot"])["data"]
    assert [t["name"].split(" (")[0] for t in traces] == ["before", "retrain", "weight_pruning", "gradient_ascent"]
    assert all(abs(sum(t["y"]) - 1) < 1e-6 for t in traces), "each run's histogram is a share of the test photos"
    assert "Attribute inference attack on 'male'" in privacy and "PSEUDO-labels" in privacy and "coin toss" in privacy
    assert 'download="attribute-audit.json"' in download
    # the attribute menu now offers the attributes that passed the consistency check
    assert attribute["value"] == "male" and [c[0] for c in attribute["choices"]] == ["male", "happy"], attribute
    assert client.predict(api_name="/session_info")["flow"] == "attributes"

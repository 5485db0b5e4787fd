"""Shared fixtures: small real-face workspaces built once per test session, and the test environment.

Data come from ``../shared`` through ``SCIKIT_LEARN_DATA`` (``make test`` sets it). Without the
data these fixtures fail loudly: they are never skipped silently.

Environment (set here, before ``unlearn_core`` or Gradio is imported):

- ``UNLEARN_CACHE``: a private temporary folder per test session (aligned chips and trained models
  are rebuilt, never read from or left in the user's cache), removed at the end. A caller who sets
  it (e.g. ``UNLEARN_CACHE=~/.cache/unlearn_core pytest ...`` to reuse a warm cache) keeps theirs.
- ``GRADIO_ANALYTICS_ENABLED=False``: no usage reports leave the machine.

Tiers: ``-m fast`` runs the unit tests that need no face data and no trained model (``make
test-fast``); a test marked ``fast`` that asks for a data fixture is an error. The session
workspaces are shared by every test, so after each test that used one its original model (and the
retrain reference, once built) must be exactly as built: no ``.grad`` on any parameter and the same
weights. A test that breaks this fails, and the model is restored so that the tests after it are not affected.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
os.environ.setdefault("SCIKIT_LEARN_DATA", str(SHARED / "sklearn_data"))
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
_OWN_CACHE = None if os.environ.get("UNLEARN_CACHE") else tempfile.mkdtemp(prefix="unlearn-test-cache-")
if _OWN_CACHE:
    os.environ["UNLEARN_CACHE"] = _OWN_CACHE

from unlearn_core.model import FaceModel
from unlearn_core.pipeline import Workspace, WorkspaceConfig

# 4 forget identities (>= 20 images) and 24 retain identities, <= 20 images each, 100 distractors:
# about 650 images; aligning them costs ~20 s the first time, training the original ~10 s.
SMALL_LFW = WorkspaceConfig(dataset="lfw", n_forget=4, seed=0, device="cpu", train_from="tail", n_distractors=100,
                            max_images_per_identity=20, n_retain=24)
DATA_FIXTURES = {"lfw_workspace", "olivetti_workspace", "att_folder", "lfw_audit", "olivetti_audit", "server"}
SHARED_WORKSPACES = ("lfw_workspace", "olivetti_workspace")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``fast`` test must not need face data: asking for a data fixture is a mistake in its marking."""
    for item in items:
        if item.get_closest_marker("fast") and DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            raise pytest.UsageError(f"{item.nodeid} is marked fast but uses {sorted(DATA_FIXTURES & set(item.fixturenames))}")


# -- the shared workspaces, and the guard that no test leaves state on them ----------------------
def checksum(model: FaceModel) -> str:
    """A digest of every tensor of ``model``'s state (parameters and buffers, frozen stages included)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Pristine:
    """What a shared model looked like when built: its checksum and a copy of its state to restore."""

    def __init__(self, model: FaceModel):
        self.checksum = checksum(model)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def problems(self, model: FaceModel, what: str) -> list[str]:
        found = []
        with_grad = [n for n, p in model.named_parameters() if p.grad is not None]
        if with_grad:
            found.append(f"{what} has .grad on {len(with_grad)} parameter(s), e.g. {with_grad[:3]}")
        if checksum(model) != self.checksum:
            found.append(f"{what}'s weights changed")
        return found

    def restore(self, model: FaceModel) -> None:
        model.zero_grad(set_to_none=True)
        model.load_state_dict(self.state)


_PRISTINE: dict[int, dict[str, Pristine]] = {}


def _shared_models(ws: Workspace) -> dict[str, FaceModel]:
    models = {"original": ws.original}
    if ws._retrain is not None:
        models["retrain"] = ws._retrain
    return models


def _remember(ws: Workspace) -> Workspace:
    assert all(p.grad is None for p in ws.original.parameters()), "a freshly built original model must carry no gradients"
    _PRISTINE[id(ws)] = {"original": Pristine(ws.original)}
    return ws


@pytest.fixture(autouse=True)
def _shared_workspaces_stay_pristine(request: pytest.FixtureRequest):
    used = [name for name in SHARED_WORKSPACES if name in request.fixturenames]
    yield
    problems = []
    for name in used:
        ws = request.getfixturevalue(name)
        pristine = _PRISTINE.setdefault(id(ws), {})
        for what, model in _shared_models(ws).items():
            if what not in pristine:  # the retrain reference, built during this test
                if any(p.grad is not None for p in model.parameters()):
                    problems.append(f"{name}.{what} has .grad after it was built")
                    model.zero_grad(set_to_none=True)
                pristine[what] = Pristine(model)
                continue
            found = pristine[what].problems(model, f"{name}.{what}")
            if found:
                problems += found
                pristine[what].restore(model)
    if problems:
        pytest.fail("this test left state on a shared session workspace: " + "; ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def lfw_workspace() -> Workspace:
    """A small LFW protocol with its CosFace original model (tail-only, CPU)."""
    return _remember(Workspace(SMALL_LFW))


@pytest.fixture(scope="session")
def olivetti_workspace() -> Workspace:
    """Olivetti (ORL crops): 5 forget identities, the other 35 retained."""
    return _remember(Workspace(WorkspaceConfig(dataset="olivetti", n_forget=5, seed=0, device="cpu", train_from="tail", n_distractors=0)))


@pytest.fixture(scope="session")
def att_folder() -> Path:
    """The original AT&T/ORL database as a ``<root>/<identity>/<image>`` folder."""
    return SHARED / "faces" / "att_faces"


# -- the app on a local port (the API tests and the browser test) -------------------------------
@pytest.fixture(scope="module")
def server(lfw_workspace, tmp_path_factory, free_tcp_port_factory):
    """The app on a free local port (anyio's port fixture), on the small LFW workspace, with a private upload folder."""
    import app

    uploads = tmp_path_factory.mktemp("gradio-uploads")
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(uploads)
    app.POOL.add(lfw_workspace)
    settings = app.AppSettings(port=free_tcp_port_factory(), device="cpu", train_from="tail", iterations=3, audit_iterations=3, warmup=False)
    demo, url = app.launch(settings, block=False)
    yield url, uploads
    demo.close()
    if previous is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = previous


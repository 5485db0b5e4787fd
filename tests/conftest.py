"""Shared fixtures: small real-face workspaces built once per test session.

Data come from ``../shared`` through ``SCIKIT_LEARN_DATA`` (``make test`` sets it). Without the
data these fixtures fail loudly: they are never skipped silently.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
os.environ.setdefault("SCIKIT_LEARN_DATA", str(SHARED / "sklearn_data"))

from unlearn_core.pipeline import Workspace, WorkspaceConfig

# 4 forget identities (>= 20 images) and 24 retain identities, <= 20 images each, 100 distractors:
# about 650 images; aligning them costs ~20 s the first time, training the original ~10 s.
SMALL_LFW = WorkspaceConfig(dataset="lfw", n_forget=4, seed=0, device="cpu", train_from="tail", n_distractors=100,
                            max_images_per_identity=20, n_retain=24)


@pytest.fixture(scope="session")
def lfw_workspace() -> Workspace:
    """A small LFW protocol with its CosFace original model (tail-only, CPU)."""
    return Workspace(SMALL_LFW)


@pytest.fixture(scope="session")
def olivetti_workspace() -> Workspace:
    """Olivetti (ORL crops): 5 forget identities, the other 35 retained."""
    return Workspace(WorkspaceConfig(dataset="olivetti", n_forget=5, seed=0, device="cpu", train_from="tail", n_distractors=0))


@pytest.fixture(scope="session")
def att_folder() -> Path:
    """The original AT&T/ORL database as a ``<root>/<identity>/<image>`` folder."""
    return SHARED / "faces" / "att_faces"

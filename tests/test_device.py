"""A workspace built on the CPU moves to another device for one call (as on Hugging Face ZeroGPU,
where a GPU exists only inside the ``spaces.GPU`` call), leaving the shared workspace untouched."""
from __future__ import annotations

import copy
import dataclasses
import time
from types import SimpleNamespace

import pytest
import torch

import app
from unlearn_core.methods import preset_params
from unlearn_core.pipeline import AuditConfig, run_method


def test_on_the_same_device_is_the_workspace_itself(olivetti_workspace):
    assert olivetti_workspace.on(torch.device("cpu")) is olivetti_workspace


def test_on_another_device_copies_models_and_inputs(olivetti_workspace):
    """PyTorch's ``meta`` device stands in for a GPU: everything the models read moves, nothing of the original does."""
    ws = olivetti_workspace
    ws.retrain_model()
    moved = ws.on(torch.device("meta"))
    for model in (moved.original, moved.retrain_model(), moved.backbone.module):
        assert {p.device.type for p in model.parameters()} == {"meta"}
    assert all(d.inputs.is_meta and d.inputs_flipped.is_meta and d.labels.is_meta for d in (d for _, d in moved.parts.items()))
    assert moved.encoder.device.type == "meta" and moved.gallery is ws.gallery and moved.split is ws.split
    frozen = moved.backbone.module.stages[: ws.start]
    assert all(a is b for a, b in zip(moved.original.backbone.stages[: ws.start], frozen)), "frozen stages stay shared"
    for model in (ws.original, ws.retrain_model(), ws.backbone.module):
        assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert all(d.inputs.device.type == "cpu" for d in (d for _, d in ws.parts.items())) and ws.device.type == "cpu"


@pytest.mark.fast
def test_zero_gpu_builds_pooled_workspaces_on_the_cpu(monkeypatch):
    """On ZeroGPU the main process has no real GPU (it may fake one): warm-up builds on the CPU, under
    the key of the configuration the app asks for."""
    built = []
    monkeypatch.setattr(app, "ZERO_GPU", True)
    monkeypatch.setattr(app, "Workspace", lambda config, progress=None: built.append(config) or SimpleNamespace(config=config))
    pool, config = app.WorkspacePool(), app.AppSettings().workspace()
    workspace = pool.build(config)
    assert config.device == "auto" and built == [dataclasses.replace(config, device="cpu")]
    assert pool.build(config) is workspace and len(built) == 1


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="CUDA smoke test: needs an NVIDIA GPU, and this machine has none (the CPU path is tested above)")
def test_a_cpu_workspace_runs_on_cuda_inside_a_call(olivetti_workspace):
    """The ZeroGPU case: the app's pool holds a workspace built on the CPU while "auto" meant the CPU;
    asked for it inside the call, where CUDA is available, it gets a CUDA copy that unlearns there."""
    ws = olivetti_workspace
    pool = app.WorkspacePool()
    ws_auto = copy.copy(ws)  # the same workspace, keyed as the app keys it
    ws_auto.config = dataclasses.replace(ws.config, device="auto")
    pool.add(ws_auto)
    started = time.perf_counter()
    gpu = pool.get(ws_auto.config)
    moved_s = time.perf_counter() - started
    assert gpu.device.type == "cuda" and gpu.original.device.type == "cuda"
    assert all(d.inputs.is_cuda for d in gpu.data.values())
    before_cpu, before_gpu = ws.evaluate(ws.original), gpu.evaluate(gpu.original)
    assert before_gpu["forget"]["mAP"] == pytest.approx(before_cpu["forget"]["mAP"], abs=1e-3)
    model, report = run_method(gpu, AuditConfig("dispersion", preset_params("dispersion", "retain-preserving"), 200))
    assert model.device.type == "cuda" and report["after"]["forget"]["mAP"] < before_gpu["forget"]["mAP"]
    print(f"\n{torch.cuda.get_device_name()}: workspace moved in {moved_s:.2f} s; dispersion (retain-preserving) "
          f"{report['iterations_run']} steps in {report['timing_s']['unlearn']:.2f} s; forget mAP "
          f"{before_gpu['forget']['mAP']:.3f} -> {report['after']['forget']['mAP']:.3f}")

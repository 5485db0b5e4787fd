"""Face embedders: pretrained ones by name (``create_backbone("dlib_resnet")``) and checkpoints
made elsewhere with a spec (``load_embedder``, see ``external``)."""
from . import dlib_resnet, facenet  # noqa: F401  (importing registers them)
from .base import ARCFACE_TEMPLATE, Backbone, InputSpec, StagedEmbedder, create_backbone, list_backbones, register_backbone
from .external import EmbedderSpec, ExternalEmbedder, export_embedder, load_embedder

__all__ = ["ARCFACE_TEMPLATE", "Backbone", "EmbedderSpec", "ExternalEmbedder", "InputSpec", "StagedEmbedder", "create_backbone",
           "export_embedder", "list_backbones", "load_embedder", "register_backbone"]

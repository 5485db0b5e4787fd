"""Pretrained face embedders by name: ``create_backbone("dlib_resnet")``."""
from . import dlib_resnet, facenet  # noqa: F401  (importing registers them)
from .base import ARCFACE_TEMPLATE, Backbone, InputSpec, StagedEmbedder, create_backbone, list_backbones, register_backbone

__all__ = ["ARCFACE_TEMPLATE", "Backbone", "InputSpec", "StagedEmbedder", "create_backbone", "list_backbones", "register_backbone"]

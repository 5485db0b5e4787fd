"""Unlearning methods by name: ``create_method("dispersion", iterations=300)``.

Adding a method = one new module here that defines a class decorated with ``@register_method``;
modules in this package are imported automatically.
"""
import importlib
import pkgutil

from .base import (
    Batch,
    Budget,
    IterativeMethod,
    UnlearningMethod,
    UnlearnRequest,
    create_method,
    list_methods,
    method_class,
    param,
    preset_params,
    register_method,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "Batch",
    "Budget",
    "IterativeMethod",
    "UnlearnRequest",
    "UnlearningMethod",
    "create_method",
    "list_methods",
    "method_class",
    "param",
    "preset_params",
    "register_method",
]

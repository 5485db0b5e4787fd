"""Small shared type aliases."""
from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]
"""A progress callback: ``progress(fraction_done, message)``, ``fraction_done`` in [0, 1]."""

"""Facial attributes: face-api's ported age/gender and expression nets as a pseudo-labeller."""
from . import nets  # noqa: F401

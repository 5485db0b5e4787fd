"""Face-identity machine unlearning: data, backbones, methods, metrics, attacks and the audit pipeline."""
__version__ = "0.1.0"

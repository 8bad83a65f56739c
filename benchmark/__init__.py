"""clipbench: zero-shot benchmark harness for CLIP-like models."""

__version__ = "0.1.0"

"""Backbones, reward heads, checkpoints and judges. Importing this package is cheap; torch and
transformers are imported by the submodules that need them."""

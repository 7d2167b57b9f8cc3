"""Noise sources: built-in generated noises and loaders for noise datasets on disk.

``NOISES`` maps a noise name to a factory returning a noise source (see :mod:`noise_sets.builtin`).
"""
from benchmark.registry import Registry

NOISES: Registry = Registry("noise", modules=("noise_sets.builtin", "noise_sets.loaders"))

"""Noise sources: built-in generated noises and loaders for noise datasets on disk.

``NOISES`` maps a noise name to a factory returning a noise source (see :mod:`noise_sets.builtin`).
"""
from benchmark.registry import Registry

# every module of this package is imported on first lookup: a new noise source is one new file
NOISES: Registry = Registry("noise", package="noise_sets")

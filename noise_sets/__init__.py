"""Noise sources: built-in generated noises and loaders for noise datasets on disk.

``NOISES`` maps a noise name to a factory returning a noise source (see :mod:`noise_sets.builtin`);
every entry is a :class:`noise_sets.base.NoiseFactory` (anything else is a ``TypeError`` naming the
registering module), which declares and checks its options.
"""
from benchmark.registry import Registry

# every module of this package is imported on first lookup: a new noise source is one new file
NOISES: Registry = Registry("noise", package="noise_sets", base="noise_sets.base.NoiseFactory")

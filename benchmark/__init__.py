"""avfusion-bench: a benchmark harness for unsupervised audio-visual speech enhancement.

This package init stays light on purpose: ``models/`` may import the leaf helpers
(:mod:`benchmark.registry`, :mod:`benchmark.seeding`, :mod:`benchmark.audio_io`,
:mod:`benchmark.conditions.corruptions`) without pulling in the harness.
"""

__version__ = "0.1.0"

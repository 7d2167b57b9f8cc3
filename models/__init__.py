"""Speech models (A-VAE, AV-VAEs), fusion modules, visual front-ends, training and the
unsupervised enhancement algorithms: the research core.

Imports run one way: nothing here imports the harness (``benchmark.runner``, ``benchmark.report``,
``benchmark.commands``, the CLI, the experiment schema ``benchmark.spec``). The only
:mod:`benchmark` modules this package may import are these leaf helpers (each imports nothing of
the harness; ``tests/test_import_direction.py`` checks both, statically):

* :mod:`benchmark.registry` -- the name -> class registries the models, fusions and algorithms
  register into (one generic mechanism for the whole project).
* :mod:`benchmark.seeding` -- derived seeds and seeded generators, so that training and
  enhancement draw from the same reproducible streams as the rest of the suite.
* :mod:`benchmark.audio_io` -- the sample rate, ``DataError`` and audio/lip validation: the one
  definition of what valid input is.
* :mod:`benchmark.configtools` -- dataclass configs from dicts with field checks (the models'
  configs are validated the same way as the presets).
* :mod:`benchmark.threads` -- the torch thread-count context manager used while training.
* :mod:`benchmark.conditions.corruptions` -- the visual corruptions, reused by the training-time
  reliability augmentation so that training sees the same corruptions as the test conditions.
* :mod:`benchmark.corpus.manifest` -- the corpus data contract (manifest columns, utterance
  loading) through which training and the NMF baselines read the clean splits.

The training configuration (:class:`models.training_config.ModelEntry`,
:class:`models.training_config.TrainingSpec`) lives here and is re-exported by
:mod:`benchmark.spec`, not the other way round.
"""


def load(path):
    """Load a checkpoint into the right registered class (see :mod:`models.checkpoint`)."""
    from models.checkpoint import load as _load

    return _load(path)

"""Speech models (A-VAE, AV-VAEs), fusion modules, visual front-ends, training and the
unsupervised enhancement algorithms. Nothing here imports the harness (runner, report)."""


def load(path):
    """Load a checkpoint into the right registered class (see :mod:`models.checkpoint`)."""
    from models.checkpoint import load as _load

    return _load(path)

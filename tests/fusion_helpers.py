"""Helpers shared by the fusion tests: small fusion options and the per-fusion filter for them."""
from __future__ import annotations

import dataclasses

from models.fusion.base import fusion_config_class

#: small attention options (fusions without these fields drop them, :func:`own_options`)
SMALL = {"window": 2, "heads": 2, "head_dim": 4}


def own_options(name: str, opts: dict) -> dict:
    """The entries of ``opts`` that the fusion ``name``'s config has."""
    fields = {f.name for f in dataclasses.fields(fusion_config_class(name))}
    return {k: v for k, v in opts.items() if k in fields}

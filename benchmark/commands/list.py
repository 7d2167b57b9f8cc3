"""List what is registered: corpora, noises, corruptions, models, fusions (with parameter
counts), enhancement algorithms, metrics and presets."""
from __future__ import annotations

import importlib
import logging

NAME = "list"
HELP = "list registered corpora, noises, corruptions, models, fusions, algorithms, metrics, presets"

log = logging.getLogger(__name__)

# (title, module, registry attribute)
FAMILIES = (
    ("corpora", "benchmark.corpus", "CORPORA"),
    ("noises", "noise_sets", "NOISES"),
    ("corruptions", "benchmark.conditions.corruptions", "CORRUPTIONS"),
    ("models", "models.registry", "MODELS"),
    ("fusions", "models.registry", "FUSIONS"),
    ("visual front-ends", "models.registry", "FRONTENDS"),
    ("algorithms", "models.enhancement.registry", "ALGORITHMS"),
    ("metrics", "benchmark.metrics", "METRICS"),
)


def add_arguments(p) -> None:
    p.add_argument("family", nargs="?", default=None, help="only this family (e.g. fusions)")


def _fusion_costs() -> dict[str, str]:
    try:
        from models.fusion import describe_costs
    except Exception:  # noqa: BLE001 - fusion zoo not importable yet
        return {}
    return describe_costs()


def _model_costs() -> dict[str, str]:
    try:
        from models.vae import describe_models
    except Exception:  # noqa: BLE001 - models not importable yet
        return {}
    return describe_models()


def run(args) -> int:
    from benchmark.spec import preset_names

    for title, modname, attr in FAMILIES:
        if args.family and args.family != title.split()[0]:
            continue
        try:
            reg = getattr(importlib.import_module(modname), attr)
            names = reg.names()
        except Exception as exc:  # noqa: BLE001 - report, keep listing the rest
            print(f"{title}: (unavailable: {type(exc).__name__}: {exc})")
            continue
        extra = _fusion_costs() if title == "fusions" else _model_costs() if title == "models" else {}
        print(f"{title} ({len(names)}):")
        for n in names:
            doc = reg.doc(n)
            cost = f"  [{extra[n]}]" if n in extra else ""
            print(f"  {n:<24} {doc}{cost}")
    if not args.family or args.family == "presets":
        print(f"presets ({len(preset_names())}):")
        for n in preset_names():
            print(f"  {n}")
    return 0

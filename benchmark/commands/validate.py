"""Validate a preset without running anything: print the fully resolved spec, or the error.

Loads the preset as every stage does (``extends`` chain, ``--set`` overrides, types and ranges,
every registered name and every nested settings map checked against its config dataclass:
:func:`benchmark.spec.check_spec`) and prints the resolved spec as YAML, then, as a second YAML
document, the settings each algorithm and each model entry will run with (defaults filled in).
Nothing is written. Exit status 0 when the preset is valid, 2 with the error (file and key) on
stderr when it is not.

Examples::

    python run_benchmark.py validate --preset smoke
    python run_benchmark.py validate --preset my_experiment.yaml --set enhance.algorithm_params.ldem.n_iter=50
"""
from __future__ import annotations

import argparse
import sys

from benchmark.cli import add_spec_arguments

NAME = "validate"
HELP = "check a preset (names, nested settings, ranges) and print the resolved spec; exit 2 on an error"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_spec_arguments(p, out=False)


def run(args: argparse.Namespace) -> int:
    import yaml

    from benchmark.configtools import ConfigError
    from benchmark.spec import check_spec, load_raw, load_spec

    try:
        spec = load_spec(args.preset, list(args.overrides))
        _, source = load_raw(args.preset)
        resolved = check_spec(spec, source)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    print(f"# {source}: valid" + (f" (with --set {' '.join(args.overrides)})" if args.overrides else ""))
    print(yaml.safe_dump(spec.to_dict(), sort_keys=False, default_flow_style=None), end="")
    print("---\n# resolved settings of each algorithm and model entry (defaults filled in)")
    print(yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None), end="")
    return 0

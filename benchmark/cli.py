"""Command-line interface: subcommands per stage, argument parsing and logging set-up; no science.

Each subcommand lives in :mod:`benchmark.commands` as a module with ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from benchmark.configtools import ConfigError

COMMANDS = ("corpus", "train", "mix", "enhance", "enhance_files", "score", "report", "run", "status", "list", "perf", "validate",
            "noise_check")

log = logging.getLogger("avbench")


def add_spec_arguments(p: argparse.ArgumentParser, *, out: bool = True) -> None:
    """The options every stage that reads an experiment spec shares."""
    p.add_argument("--preset", default="smoke", help="preset name or YAML path (default: smoke)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. --set enhance.algorithms=[ldem] (repeatable)")
    if out:
        p.add_argument("--out", default=None, help="run folder (default: runs/<preset>)")


def load_stage_spec(args: argparse.Namespace, extra_overrides: list[str] | tuple[str, ...] = ()):
    """The spec of ``--preset``/``--set`` (plus ``extra_overrides``, and ``--limit`` where the command
    has it) and the run folder (``--out``, default ``runs/<spec name>``)."""
    from pathlib import Path

    from benchmark.spec import load_spec

    overrides = list(args.overrides) + list(extra_overrides)
    if getattr(args, "limit", None) is not None:
        overrides.append(f"runner.limit={args.limit}")
    spec = load_spec(args.preset, overrides)
    return spec, Path(getattr(args, "out", None) or f"runs/{spec.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avbench",
        description="avfusion-bench: benchmark audio-visual fusion for unsupervised speech enhancement "
        "(VAE speech prior + NMF noise + EM).",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        mod = importlib.import_module(f"benchmark.commands.{name}")
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=(mod.__doc__ or mod.HELP).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           aliases=[name] if name != mod.NAME else [])  # enhance_files: enhance-files
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr, force=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args._run(args) or 0)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

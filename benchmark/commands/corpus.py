"""Build, check and preview the corpus of an experiment spec.

  corpus build    build the corpus (or reuse it when built with the same settings), then run
                  the lip-information check and print its figures
  corpus check    run the lip-information check alone (writes infocheck.json next to the manifest)
  corpus preview  write a contact sheet (PNG) and a short MP4 with audio (plus the WAV)
  corpus info     print the corpus summary (splits, speakers, durations)

The corpus comes from the spec's ``corpus`` section (``--preset``/``--set``); ``--root``
names its folder (default: the spec's ``corpus.root``, else data/corpus/<name>-<settings hash>).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

NAME = "corpus"
HELP = "build / check / preview the corpus (built-in synthetic AV corpus or a real-corpus adapter)"

log = logging.getLogger(__name__)


def _common(p: argparse.ArgumentParser) -> None:
    from benchmark.cli import add_spec_arguments

    add_spec_arguments(p, out=False)
    p.add_argument("--root", default=None, help="corpus folder (default: corpus.root or data/corpus/<name>-<hash>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="corpus_action", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="build (or reuse) the corpus and print the lip-information check")
    _common(b)
    b.add_argument("--force", action="store_true", help="rebuild even if a matching corpus exists")
    b.add_argument("--no-check", action="store_true", help="skip the lip-information check")
    c = sub.add_parser("check", help="lip-information check on held-out speakers (JSON next to the manifest)")
    _common(c)
    v = sub.add_parser("preview", help="contact sheet PNG + short MP4 with audio")
    _common(v)
    v.add_argument("--dest", default=None, help="output folder (default: <root>/preview)")
    v.add_argument("-n", type=int, default=3, help="utterances in the MP4 (default 3)")
    i = sub.add_parser("info", help="summary of the corpus")
    _common(i)


def _root(args, spec) -> Path:
    from benchmark.corpus.build import corpus_root

    return Path(args.root) if args.root else corpus_root(spec.corpus)


def _check(root: Path) -> None:
    from benchmark.corpus.infocheck import REPORT_FILE, format_report, run_infocheck

    t0 = time.perf_counter()
    rep = run_infocheck(root)
    print(format_report(rep))
    print(f"  ({time.perf_counter() - t0:.1f} s; report: {root / REPORT_FILE})")


def _info(root: Path) -> None:
    from benchmark.corpus.manifest import read_manifest, read_sidecar

    df = read_manifest(root)
    side = read_sidecar(root)
    print(f"corpus at {root}: {side.get('corpus', side.get('generator', '?'))}, {len(df)} utterances, "
          f"{df['duration_s'].sum() / 60:.1f} min, fps {sorted(df['fps'].unique().tolist())}")
    for split, g in df.groupby("split", sort=False):
        print(f"  {split:7s} {g['speaker'].nunique():4d} speakers {len(g):6d} utts  duration "
              f"{g['duration_s'].min():.2f}-{g['duration_s'].max():.2f} s (mean {g['duration_s'].mean():.2f})")
    if side.get("note"):
        print(f"  note: {side['note']}")


def run(args) -> int:
    from benchmark.audio_io import DataError
    from benchmark.spec import load_spec

    spec = load_spec(args.preset, args.overrides)
    root = _root(args, spec)
    try:
        if args.corpus_action == "build":
            from benchmark.corpus.build import ensure_corpus

            t0 = time.perf_counter()
            root = ensure_corpus(spec.corpus, root, progress=not args.no_progress, force=args.force)
            print(f"corpus ready in {time.perf_counter() - t0:.1f} s")
            _info(root)
            if not args.no_check:
                _check(root)
        elif args.corpus_action == "check":
            _check(root)
        elif args.corpus_action == "preview":
            from benchmark.corpus.preview import contact_sheet, preview_video

            dest = Path(args.dest) if args.dest else root / "preview"
            png = contact_sheet(root, dest / "contact_sheet.png")
            mp4, wav = preview_video(root, dest / "preview.mp4", n=args.n)
            print(f"contact sheet: {png}\nvideo: {mp4}\naudio: {wav}")
        elif args.corpus_action == "info":
            _info(root)
    except DataError as exc:
        log.error("%s", exc)
        return 1
    return 0

"""Corpora: the manifest contract, the synthetic generator and real-corpus adapters.

``CORPORA`` maps a corpus name to a builder ``build(spec: CorpusSpec, root: Path, **kw) -> Path``
that writes a manifest (see :mod:`benchmark.corpus.manifest`) under ``root`` and returns it.
"""
from benchmark.registry import Registry

CORPORA: Registry = Registry(
    "corpus",
    modules=(
        "benchmark.corpus.synthetic.build",
        "benchmark.corpus.adapters.grid",
        "benchmark.corpus.adapters.tcd_timit",
        "benchmark.corpus.adapters.generic",
    ),
)

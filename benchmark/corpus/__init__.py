"""Corpora: the manifest contract, the synthetic generator and real-corpus adapters.

``CORPORA`` maps a corpus name to a builder ``build(spec: CorpusSpec, root: Path, **kw) -> Path``
that writes a manifest (see :mod:`benchmark.corpus.manifest`) under ``root`` and returns it.
"""
from benchmark.registry import Registry

# the synthetic generator plus every module of benchmark/corpus/adapters/ (imported on first
# lookup): a new real-corpus adapter is one new file there
CORPORA: Registry = Registry("corpus", modules=("benchmark.corpus.synthetic.build",),
                             package="benchmark.corpus.adapters")

"""Registries of the research core: speech models, fusion modules and visual front-ends."""
from benchmark.registry import Registry

# every module of models/ (imported on first lookup): a new speech model is one new file there,
# registering a SpeechModel subclass
MODELS: Registry = Registry("model", package="models", base="models.base.SpeechModel")
# every module of models/fusion/ (a new fusion is one new file), each registering a Fusion subclass
FUSIONS: Registry = Registry("fusion", package="models.fusion", base="models.fusion.base.Fusion")
FRONTENDS: Registry = Registry("visual front-end", modules=("models.visual",))

"""Registries of the research core: speech models, fusion modules and visual front-ends."""
from benchmark.registry import Registry

MODELS: Registry = Registry("model", modules=("models.vae", "models.mixture"))
FUSIONS: Registry = Registry("fusion", modules=("models.fusion",))
FRONTENDS: Registry = Registry("visual front-end", modules=("models.visual",))

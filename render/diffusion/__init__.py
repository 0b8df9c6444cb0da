"""Diffusion renderer: a local SD 1.5 / SDXL model, loaded once per worker, rendering micro-batches.

recipe.py and request.py say what to render, loading.py brings a local model up
on its device, model.py (DiffusionRenderer) renders batches behind the quality
gate and records the provenance of each image.
"""

from render.diffusion.errors import DiffusionUnavailable, InvalidDiffusionModel, InvalidDiffusionRecipe, ModelNotFound
from render.diffusion.loading import LoadedLora, ModelKind, resolve_device, sha256_file, sha256_tree
from render.diffusion.model import PNG_COMPRESS_LEVEL, RENDERER, RENDERER_VERSION, DiffusionRender, DiffusionRenderer
from render.diffusion.recipe import SCHEDULERS, TIMESTEP_SPACINGS, DiffusionRecipe
from render.diffusion.request import DiffusionRequest, QualityGate

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "RENDERER",
    "RENDERER_VERSION",
    "SCHEDULERS",
    "TIMESTEP_SPACINGS",
    "DiffusionRecipe",
    "DiffusionRender",
    "DiffusionRenderer",
    "DiffusionRequest",
    "DiffusionUnavailable",
    "InvalidDiffusionModel",
    "InvalidDiffusionRecipe",
    "LoadedLora",
    "ModelKind",
    "ModelNotFound",
    "QualityGate",
    "resolve_device",
    "sha256_file",
    "sha256_tree",
]

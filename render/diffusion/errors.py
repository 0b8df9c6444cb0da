"""The diffusion renderer's exceptions: a missing or unloadable model, a bad recipe, no device."""

from __future__ import annotations

from render.errors import RenderError


class DiffusionUnavailable(RenderError):
    """The requested device or dtype cannot run here (no CUDA, half precision on CPU)."""

    code = "diffusion_unavailable"


class ModelNotFound(RenderError):
    """The configured model path (or a LoRA a collection names) does not exist; nothing is ever downloaded."""

    code = "diffusion_model_not_found"


class InvalidDiffusionModel(RenderError):
    """The model path exists but is not a loadable SD 1.5 / SDXL folder or single-file checkpoint."""

    code = "invalid_diffusion_model"


class InvalidDiffusionRecipe(RenderError):
    """A collection's [render.diffusion] table names an unknown key or a bad value."""

    code = "invalid_diffusion_recipe"

"""The diffusion model as a worker's renderer: loaded once, warmed per collection, micro-batched."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from personalization.style import StyleDNA, StyleParams
from render.batching import MicroBatcher
from render.diffusion import DiffusionRecipe, DiffusionRender, DiffusionRenderer, DiffusionRequest, ModelNotFound
from render.renderer.base import DiffusionOptions, Rendered


class BatchedDiffusionRenderer:
    """Renders each job's request through one MicroBatcher, so concurrent jobs share forward passes."""

    def __init__(self, model: DiffusionRenderer, batcher: MicroBatcher[DiffusionRequest, DiffusionRender]) -> None:
        self.model = model
        self.batcher = batcher

    @classmethod
    async def start(cls, collections: Mapping[str, StyleDNA], options: DiffusionOptions) -> BatchedDiffusionRenderer:
        """Load the model (with every LoRA a collection names) and run each batch size once per collection."""
        recipes = {cid: DiffusionRecipe.from_dna(dna) for cid, dna in collections.items()}
        loras = {r.lora: _lora_path(options.lora_dir, r.lora) for r in recipes.values() if r.lora}
        model = await asyncio.to_thread(
            DiffusionRenderer.load,
            options.model_path,
            device=options.device,
            dtype=options.dtype,
            model_kind=options.model_kind,
            config_path=options.model_config_path,
            loras=loras,
            compile=options.compile,
            compile_mode=options.compile_mode,
            max_batch_size=options.batch_size,
            model_id=options.model_id,
        )
        batcher: MicroBatcher[DiffusionRequest, DiffusionRender] = MicroBatcher(
            model.render_batch,
            max_batch_size=options.batch_size,
            max_wait_ms=options.batch_wait_ms,
            key=lambda request: request.batch_key,
        )
        for cid, dna in collections.items():
            recipe = recipes[cid]
            # Through the batcher: compiled graphs belong to the thread that ran them first.
            await batcher.call(
                model.warmup,
                recipe,
                recipe.width or dna.width,
                recipe.height or dna.height,
                range(1, options.batch_size + 1),
            )
        return cls(model, batcher)

    async def render(self, dna: StyleDNA, params: StyleParams, seed: int) -> Rendered:
        out = await self.batcher.submit(DiffusionRequest.for_job(dna, params, seed))
        return Rendered(out.result, out.provenance)

    async def aclose(self) -> None:
        await self.batcher.aclose()


def _lora_path(lora_dir: Path | None, name: str) -> Path:
    if lora_dir is None:
        raise ModelNotFound(f"a collection names LoRA {name!r}, but no LoRA folder is set (PERSONAMINT_LORA_DIR)")
    return lora_dir / f"{name}.safetensors"

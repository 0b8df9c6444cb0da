"""Paper tooth and mottling, the texture most media print onto."""

from __future__ import annotations

import numpy as np

from render.procedural.canvas import Canvas
from render.procedural.fields import F32
from render.procedural.noise import LATTICE, fbm, lattice, noise_sep


def paper_texture(cv: Canvas, rng: np.random.Generator, grain: float) -> np.ndarray:
    """Paper tooth and mottling, ~0 mean; grain sets how much shows."""
    tooth = noise_sep(lattice(rng), cv.u, cv.v, 90.0, rng.random() * LATTICE, rng.random() * LATTICE)
    tooth -= F32(0.5)
    tooth *= F32(0.05 + 0.35 * grain)
    mottle = fbm(rng, cv, 5.0, 3)
    mottle -= F32(0.5)
    mottle *= F32(0.03 + 0.22 * grain)
    tooth += mottle
    return tooth

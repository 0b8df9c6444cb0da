"""Which function draws each motif and which paints each medium, by the name StyleParams uses."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from render.procedural.canvas import Canvas
from render.procedural.layers import Layers
from render.procedural.media.blueprint import paint_blueprint
from render.procedural.media.ink import paint_ink
from render.procedural.media.neon import paint_neon
from render.procedural.media.oil import paint_oil
from render.procedural.media.risograph import paint_risograph
from render.procedural.media.watercolor import paint_watercolor
from render.procedural.motifs.constellation import draw_constellation
from render.procedural.motifs.flow import draw_flow
from render.procedural.motifs.grid import draw_grid
from render.procedural.motifs.rings import draw_rings
from render.procedural.motifs.shards import draw_shards
from render.procedural.motifs.terrain import draw_terrain
from render.procedural.palette import Palette
from render.procedural.style import Style

# A motif lays out the composition; a medium paints those layers in its own technique.
Motif = Callable[[Canvas, np.random.Generator, Style], Layers]
Medium = Callable[[Layers, Palette, Canvas, np.random.Generator, Style], np.ndarray]

# Keys match style.MOTIFS and style.MEDIA, whose order is part of the pixels (an
# unknown name hashes to a position in them), so a new one is appended there too.
MOTIF_BY_NAME: dict[str, Motif] = {
    "flow": draw_flow,
    "rings": draw_rings,
    "grid": draw_grid,
    "constellation": draw_constellation,
    "terrain": draw_terrain,
    "shards": draw_shards,
}

MEDIUM_BY_NAME: dict[str, Medium] = {
    "ink": paint_ink,
    "watercolor": paint_watercolor,
    "risograph": paint_risograph,
    "neon": paint_neon,
    "blueprint": paint_blueprint,
    "oil": paint_oil,
}

"""Mirror folding of a motif's layers, from none to an eightfold kaleidoscope."""

from __future__ import annotations

import numpy as np

from render.procedural.layers import Layers


def fold(layers: Layers, symmetry: float) -> Layers:
    """Mirror-fold every layer in place: the fold line walks in from the edge as symmetry grows.

    0..0.5 moves a vertical mirror from the left edge to the centre, 0.5..0.85
    brings in a horizontal one, and >= 0.9 adds the diagonal (square canvases)
    for an eightfold kaleidoscope. Folding pixels rather than coordinates keeps
    it exact, motif-agnostic, and a handful of slice copies.
    """
    h, w = layers.tone.shape
    xc = min(round(min(symmetry, 0.5) * w), w // 2)
    yc = min(round(min(max(symmetry - 0.5, 0.0) / 0.35, 1.0) * 0.5 * h), h // 2)
    diagonal = symmetry >= 0.9 and h == w and xc == w // 2 and yc == h // 2
    if xc == 0 and yc == 0:
        return layers
    upper = ~np.tri(h - yc, w - xc, dtype=bool) if diagonal else None
    seen: set[int] = set()
    for field in (layers.tone, layers.line, layers.accent, layers.shade, layers.flow):
        if field is None or id(field) in seen:
            continue
        seen.add(id(field))
        if upper is not None:
            quadrant = field[yc:, xc:]
            np.copyto(quadrant, quadrant.T.copy(), where=upper)
        if yc:
            field[:yc] = field[2 * yc - 1 : yc - 1 : -1]
        if xc:
            field[:, :xc] = field[:, 2 * xc - 1 : xc - 1 : -1]
    return layers

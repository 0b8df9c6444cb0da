"""What a motif hands a medium: tone, line work and optional light fields over the canvas."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layers:
    """What a motif hands a medium: all (h, w) float32."""

    tone: np.ndarray  # colour position along the palette, 0..1
    line: np.ndarray  # line-work coverage, 0..1
    accent: np.ndarray | None = None  # point lights: stars, nodes, glints
    shade: np.ndarray | None = None  # multiplicative light, ~1
    flow: np.ndarray | None = None  # smooth field whose level lines follow the composition

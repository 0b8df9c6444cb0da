"""The pixel grid a frame is drawn on, its coordinates and line widths at any resolution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from render.procedural.fields import F32, upsample_to


@dataclass(frozen=True)
class Canvas:
    """Pixel grid and its coordinates: the short side spans [-1, 1]."""

    h: int
    w: int
    u: np.ndarray  # (w,) float32
    v: np.ndarray  # (h,) float32
    px: float  # coordinate units per full-resolution pixel
    step: float  # full-resolution pixels per pixel of this grid

    @classmethod
    def make(cls, h: int, w: int) -> Canvas:
        return cls._grid(h, w, h, w)

    @classmethod
    def _grid(cls, full_h: int, full_w: int, h: int, w: int) -> Canvas:
        short = min(full_h, full_w)
        step = full_w / w
        u = ((np.arange(w, dtype=np.float64) + 0.5) * (full_w / w) - full_w * 0.5) * (2.0 / short)
        v = ((np.arange(h, dtype=np.float64) + 0.5) * (full_h / h) - full_h * 0.5) * (2.0 / short)
        return cls(h, w, u.astype(F32), v.astype(F32), 2.0 / short, step)

    @property
    def scale(self) -> float:
        """Line widths are designed at 1024 px; scale them with the image."""
        return min(self.h, self.w) * self.step / 1024.0

    def lo(self, factor: int) -> Canvas:
        h = max(4, -(-self.h // factor))
        w = max(4, -(-self.w // factor))
        return Canvas._grid(self.h, self.w, h, w)

    def grids(self) -> tuple[np.ndarray, np.ndarray]:
        return np.broadcast_to(self.u[None, :], (self.h, self.w)), np.broadcast_to(self.v[:, None], (self.h, self.w))

    def upsample(self, lo: np.ndarray) -> np.ndarray:
        """Bilinear, separable: the cheap way to bring a smooth low-res field to full size."""
        return upsample_to(lo, self.h, self.w)


def line_width(cv: Canvas, width_at_1024: float) -> float:
    """Line width in pixels: scaled with the image, but never thinner than a pixel."""
    return max(0.9, width_at_1024 * cv.scale)


def pixel_window(cv: Canvas, x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice] | None:
    """Pixel window covering a coordinate box, or None when off canvas."""
    cx0 = max(0, int((min(x0, x1) / cv.px) + cv.w * 0.5) - 1)
    cx1 = min(cv.w, int((max(x0, x1) / cv.px) + cv.w * 0.5) + 2)
    cy0 = max(0, int((min(y0, y1) / cv.px) + cv.h * 0.5) - 1)
    cy1 = min(cv.h, int((max(y0, y1) / cv.px) + cv.h * 0.5) + 2)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    return slice(cy0, cy1), slice(cx0, cx1)

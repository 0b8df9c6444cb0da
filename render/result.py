"""RenderResult: the PNG a renderer produced and the hashes that identify it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RenderResult:
    """One rendered image; pixel_sha256 is the reproducibility handle, file_sha256 the pin's."""

    png: bytes = field(repr=False)
    width: int
    height: int
    file_sha256: str
    pixel_sha256: str
    renderer: str
    renderer_version: str
    seed: int
    attempts: int
    synth_seconds: float
    encode_seconds: float


def pixel_sha256(rgb: np.ndarray) -> str:
    """sha256 over b"RGB8:WxH:" + raw HxWx3 uint8 pixels in C order.

    Hashing pixels rather than the PNG keeps `verify` meaningful across
    machines whose zlib builds compress the same pixels to different bytes.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 array, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    digest = hashlib.sha256(b"RGB8:%dx%d:" % (width, height))
    digest.update(np.ascontiguousarray(rgb).tobytes())
    return digest.hexdigest()

"""What provenance records about the software and device a model runs on."""

from __future__ import annotations

import platform
from importlib import metadata

import torch


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__}
    for package in ("diffusers", "transformers", "peft", "safetensors", "numpy", "pillow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["cuda"] = torch.version.cuda
    cudnn = torch.backends.cudnn
    versions["cudnn"] = str(cudnn.version()) if cudnn.is_available() else None  # type: ignore[no-untyped-call]
    return versions


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return f"cpu {platform.machine()} ({torch.get_num_threads()} threads)"

"""Every Redis key the service uses, named in one place."""

from __future__ import annotations


def preview_image_key(preview_id: str) -> str:
    """A rendered preview's PNG, written by the worker that rendered it and read by the API."""
    return f"pm:cache:preview-image:{preview_id}"

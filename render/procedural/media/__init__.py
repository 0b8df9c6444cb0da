"""The procedural renderer's media, one per file: each paints a motif's Layers as RGB."""

"""The procedural renderer's motifs, one per file: each lays out a composition as Layers."""

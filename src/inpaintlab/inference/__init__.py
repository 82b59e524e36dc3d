"""Inpainter: a trained model on photos of any size, with the crop/resize/full strategies."""

# the strategies' names, here so that the command line lists them without importing torch
STRATEGIES = ("auto", "crop", "resize", "full")

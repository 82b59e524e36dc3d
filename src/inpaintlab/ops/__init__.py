"""Tensor and process helpers every folder shares: compositing a fill into a photo, full precision
under autocast, per-rank state, growth of values into the neighbours a region allows."""

"""Render a grid of generated masks, with each tile's hole ratio, to a PNG (PIL only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from inpaintlab.data.masks import MaskGenerator, hole_ratio

GAP = 4  # grey pixels between tiles
STRIP = 16  # height of the caption strip under each tile
BAR = 3  # height of the ratio bar at the top of the strip
BAR_COLOUR = (230, 80, 40)
_GAP_GREY, _STRIP_GREY = 96, 32


def _tile(mask: np.ndarray, ratio: float) -> Image.Image:
    """One mask (white = hole) above a strip with a ratio bar and the ratio in percent."""
    size = mask.shape[1]
    tile = Image.new("RGB", (size, size + STRIP), (_STRIP_GREY,) * 3)
    tile.paste(Image.fromarray(mask.astype(np.uint8) * 255).convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(tile)
    bar = round(ratio * size)
    if bar > 0:
        draw.rectangle((0, size, bar - 1, size + BAR - 1), fill=BAR_COLOUR)
    draw.text((2, size + BAR), f"{100 * ratio:.1f}% hole", fill=(255, 255, 255))
    return tile


def render_mask_preview(
    generator: MaskGenerator,
    out_path: str | Path,
    rows: int = 4,
    cols: int = 8,
    size: int = 256,
    seed: int = 0,
) -> Path:
    """Write a rows x cols grid of `size` px masks drawn with `seed` to `out_path` (PNG).

    Holes are white, known pixels black. Under each tile a strip shows the hole ratio as a
    bar (its length is the ratio times the tile width) and as a percentage.
    """
    rng = torch.Generator().manual_seed(seed)
    masks = generator(rows * cols, size, size, generator=rng)
    ratios = hole_ratio(masks).tolist()
    grid = masks[:, 0].bool().numpy()
    step_x, step_y = size + GAP, size + STRIP + GAP
    sheet = Image.new("RGB", (cols * step_x + GAP, rows * step_y + GAP), (_GAP_GREY,) * 3)
    for index, (mask, ratio) in enumerate(zip(grid, ratios, strict=True)):
        row, col = divmod(index, cols)
        sheet.paste(_tile(mask, ratio), (GAP + col * step_x, GAP + row * step_y))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out

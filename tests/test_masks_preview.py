"""Tests for inpaintlab.apps.masks_preview.render_mask_preview."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from inpaintlab.apps.masks_preview import BAR, BAR_COLOUR, GAP, STRIP, render_mask_preview
from inpaintlab.data.masks import FreeFormMask, hole_ratio

ROWS, COLS, SIZE = 2, 3, 32


def _render(tmp_path, seed=0, name="preview.png"):
    """Render a small free-form preview and return (path, RGB array, masks drawn with seed)."""
    gen = FreeFormMask()
    path = render_mask_preview(gen, tmp_path / "out" / name, ROWS, COLS, SIZE, seed=seed)
    masks = gen(ROWS * COLS, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    return path, np.asarray(Image.open(path).convert("RGB")), masks


def _tile_origin(index: int) -> tuple[int, int]:
    """Top-left (y, x) of tile `index` in the sheet."""
    row, col = divmod(index, COLS)
    return GAP + row * (SIZE + STRIP + GAP), GAP + col * (SIZE + GAP)


def test_preview_writes_a_png_grid_of_the_expected_size(tmp_path):
    path, sheet, _ = _render(tmp_path)
    assert path == tmp_path / "out" / "preview.png" and path.is_file()
    assert Image.open(path).format == "PNG"
    assert sheet.shape == (ROWS * (SIZE + STRIP + GAP) + GAP, COLS * (SIZE + GAP) + GAP, 3)


def test_preview_tiles_show_the_seeded_masks_white_on_black(tmp_path):
    _, sheet, masks = _render(tmp_path, seed=3)
    for index, mask in enumerate(masks[:, 0]):
        y, x = _tile_origin(index)
        tile = sheet[y : y + SIZE, x : x + SIZE, 0]
        assert np.array_equal(tile == 255, mask.numpy() == 1)
        assert np.array_equal(tile == 0, mask.numpy() == 0)


def test_preview_strip_shows_each_hole_ratio_as_a_bar_and_text(tmp_path):
    _, sheet, masks = _render(tmp_path, seed=4)
    for index, ratio in enumerate(hole_ratio(masks).tolist()):
        y, x = _tile_origin(index)
        bar_row = sheet[y + SIZE, x : x + SIZE]
        assert (bar_row == BAR_COLOUR).all(axis=1).sum() == round(ratio * SIZE)
        text = sheet[y + SIZE + BAR : y + SIZE + STRIP, x : x + SIZE]
        assert (text.max(axis=2) > 200).any()


def test_preview_is_reproducible_from_the_seed(tmp_path):
    _, first, _ = _render(tmp_path, seed=5, name="a.png")
    _, again, _ = _render(tmp_path, seed=5, name="b.png")
    _, other, _ = _render(tmp_path, seed=6, name="c.png")
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)

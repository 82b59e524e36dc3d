"""Inference strategies for photos larger than the training size: the hole groups against a
slow flood fill, the windows around them, and crop / resize fills that keep known pixels."""

from __future__ import annotations

from collections import deque

import pytest
import torch

from inpaintlab import Inpainter
from inpaintlab.errors import ConfigError
from inpaintlab.inference.strategies import (
    MAX_WINDOW_FACTOR,
    Window,
    boxes_of,
    chosen_strategy,
    cropped_fill,
    group_labels,
    hole_windows,
    resized_fill,
)
from tests.tiny_checkpoints import tiny_model

SIDE = 32


def flood_fill_boxes(grid: torch.Tensor) -> set[Window]:
    """The bounding boxes of 8-connected groups, by breadth-first search cell by cell."""
    height, width = grid.shape
    seen, boxes = set(), set()
    for start in zip(*torch.nonzero(grid, as_tuple=True), strict=True):
        start = (int(start[0]), int(start[1]))
        if start in seen:
            continue
        queue, cells = deque([start]), []
        seen.add(start)
        while queue:
            row, col = queue.popleft()
            cells.append((row, col))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    near = (row + dr, col + dc)
                    inside = 0 <= near[0] < height and 0 <= near[1] < width
                    if inside and near not in seen and grid[near]:
                        seen.add(near)
                        queue.append(near)
        rows, cols = zip(*cells, strict=True)
        boxes.add(Window(min(rows), min(cols), max(rows) + 1, max(cols) + 1))
    return boxes


@pytest.mark.parametrize("seed", range(6))
def test_hole_groups_match_a_flood_fill(seed):
    generator = torch.Generator().manual_seed(seed)
    grid = torch.rand(17, 23, generator=generator) < 0.25
    assert {box for _, box in boxes_of(group_labels(grid))} == flood_fill_boxes(grid)


def test_a_map_without_holes_has_no_window():
    assert hole_windows(torch.zeros(100, 80, dtype=torch.bool), SIDE)[1] == []


def scratches(height: int, width: int, rows: list[int]) -> torch.Tensor:
    """Thin horizontal scratches, 2 px high and 40 px long, at the given rows."""
    holes = torch.zeros(height, width, dtype=torch.bool)
    for number, row in enumerate(rows):
        left = 20 + 70 * (number % 3)
        holes[row : row + 2, left : left + 40] = True
    return holes


def test_each_hole_belongs_to_one_window_that_holds_it_with_context():
    holes = scratches(600, 300, [40, 300, 320, 560])
    groups, windows = hole_windows(holes, SIDE)
    owners = torch.zeros(holes.shape, dtype=torch.long)
    covered = torch.zeros_like(holes)
    for group, window in windows:
        assert 0 <= window.top < window.bottom <= 600 and 0 <= window.left < window.right <= 300
        assert window.bottom - window.top >= SIDE and window.right - window.left >= SIDE
        inside = torch.zeros_like(holes)
        inside[window.top : window.bottom, window.left : window.right] = True
        own = holes & (groups == group)
        assert inside[own].all()  # the window holds its group's holes
        owners += own.long()
        covered |= inside
    assert torch.equal(owners, holes.long())  # every hole has exactly one window
    assert len(windows) == 4
    assert covered.float().mean() < 0.3  # the cost follows the holes, not the photo


def recording_fill(calls: list[tuple[int, int]]):
    """A stand-in model: grey holes, and each call's size recorded."""

    def fill(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(image.shape[-2:]))
        return torch.where(mask.bool(), 0.5, image)

    return fill


def test_a_cropped_fill_fills_every_hole_and_keeps_the_rest_bit_for_bit():
    image = torch.rand(2, 3, 600, 300)
    mask = torch.stack([scratches(600, 300, [40, 300]), scratches(600, 300, [500])])[:, None]
    calls: list[tuple[int, int]] = []
    out = cropped_fill(recording_fill(calls), image, mask.float(), SIDE)
    assert torch.equal(out[~mask.expand_as(out)], image[~mask.expand_as(image)])
    assert (out[mask.expand_as(out)] == 0.5).all()
    assert len(calls) == 3
    assert all(max(size) <= MAX_WINDOW_FACTOR * SIDE for size in calls)


def test_many_overlapping_windows_stay_small_and_fill_every_hole():
    image = torch.rand(1, 3, 200, 200)
    mask = torch.zeros(1, 1, 200, 200)
    mask[..., 20:180:12, 10:100] = 1  # 14 thin lines whose windows all overlap
    calls: list[tuple[int, int]] = []
    out = cropped_fill(recording_fill(calls), image, mask, SIDE)
    assert (out[mask.expand_as(out) == 1] == 0.5).all()
    assert torch.equal(out[mask.expand_as(out) == 0], image[mask.expand_as(image) == 0])
    assert len(calls) > 5 and all(height <= 2 * SIDE for height, _ in calls)


def test_a_resized_fill_runs_at_the_training_size_and_pastes_into_the_holes():
    image = torch.rand(1, 3, 400, 200)
    mask = torch.zeros(1, 1, 400, 200)
    mask[..., 100:200, 40:120] = 1
    calls: list[tuple[int, int]] = []
    out = resized_fill(recording_fill(calls), image, mask, SIDE)
    assert calls == [(SIDE, SIDE // 2)]
    assert torch.equal(out[mask.expand_as(out) == 0], image[mask.expand_as(image) == 0])
    # a coarse pixel (12.5 px) inside the hole's border, the enlarged fill is the model's
    inner = out[..., 120:180, 60:100]
    torch.testing.assert_close(inner, torch.full_like(inner, 0.5))


@pytest.mark.parametrize(
    ("strategy", "size", "centre_only", "expected"),
    [
        ("auto", 4 * SIDE, False, "full"),
        ("auto", 4 * SIDE + 1, False, "crop"),
        ("auto", 10 * SIDE, True, "full"),
        ("resize", 10, False, "resize"),
        ("crop", 10, False, "crop"),
    ],
)
def test_auto_takes_full_for_small_photos_and_crop_for_large_ones(
    strategy, size, centre_only, expected
):
    assert chosen_strategy(strategy, size, size // 2, SIDE, centre_only) == expected


@pytest.mark.parametrize(
    ("strategy", "message"), [("tile", "unknown strategy"), ("crop", "centre")]
)
def test_a_strategy_that_cannot_work_is_a_config_error(strategy, message):
    with pytest.raises(ConfigError, match=message):
        chosen_strategy(strategy, 500, 500, SIDE, centre_only=True)


@pytest.mark.parametrize("strategy", ["auto", "crop", "resize", "full"])
def test_every_strategy_keeps_the_known_pixels_of_a_large_photo(strategy):
    inpainter = Inpainter(tiny_model("pconv"), "tiny", torch.device("cpu"))
    inpainter.model.run_config = {"data": {"image_size": SIDE}}
    image = torch.rand(1, 3, 300, 180)
    mask = scratches(300, 180, [30, 200])[None, None].float()
    out = inpainter(image, mask, strategy)
    known = mask.expand_as(image) == 0
    assert torch.equal(out[known], image[known])
    assert torch.isfinite(out).all() and not torch.equal(out, image)

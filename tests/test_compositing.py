"""Compositing helpers against direct per-pixel definitions."""

from __future__ import annotations

import itertools

import torch

from inpaintlab.ops.compositing import composite, holes_outside


def test_composite_takes_the_prediction_in_holes_only():
    image, pred = torch.rand(2, 3, 5, 6), torch.rand(2, 3, 5, 6)
    mask = (torch.rand(2, 1, 5, 6) > 0.5).float()
    out = composite(pred, image, mask)
    for b, c, y, x in itertools.product(range(2), range(3), range(5), range(6)):
        expected = pred if mask[b, 0, y, x] else image
        assert out[b, c, y, x] == expected[b, c, y, x]


def test_holes_outside_matches_a_pixel_by_pixel_check():
    box = (2, 3, 4)  # rows 2-5, columns 3-6
    for seed in range(20):
        mask = torch.rand(1, 1, 9, 9, generator=torch.Generator().manual_seed(seed)) > 0.8
        outside = any(
            mask[0, 0, y, x] and not (2 <= y < 6 and 3 <= x < 7)
            for y, x in itertools.product(range(9), range(9))
        )
        for kind in (mask, mask.float()):
            before = kind.clone()
            assert holes_outside(kind, box) == outside
            assert torch.equal(kind, before)  # the caller's mask is left alone

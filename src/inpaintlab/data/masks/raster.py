"""Batched rasterisation of thick line segments (capsules) into masks.

A capsule is every point within `radius` of a segment. It is convex, so each pixel row
meets it in one interval of columns. For every segment we compute that interval on a window
of rows (analytically: two end disks and the swept rectangle), then paint all intervals of
all segments at once with a difference array and a cumulative sum along each row. The cost
grows with segments x rows in the window, not with segments x pixels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_INF = math.inf


def _disk_span(cx: Tensor, cy: Tensor, radius: Tensor, yc: Tensor) -> tuple[Tensor, Tensor]:
    """Columns [left, right] where the row at height `yc` crosses a disk (empty: left > right)."""
    h2 = radius.square() - (yc - cy).square()
    half = h2.clamp_min(0.0).sqrt()
    hit = h2 >= 0
    return torch.where(hit, cx - half, _INF), torch.where(hit, cx + half, -_INF)


def _linear_span(a: Tensor, c: Tensor, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
    """Solutions x of low <= a * x + c <= high as an interval (all, none or bounded)."""
    flat = a.abs() < 1e-9
    safe = torch.where(flat, torch.ones_like(a), a)
    p, q = (low - c) / safe, (high - c) / safe
    inside = (c >= low) & (c <= high)
    left = torch.where(flat, torch.where(inside, -_INF, _INF), torch.minimum(p, q))
    right = torch.where(flat, torch.where(inside, _INF, -_INF), torch.maximum(p, q))
    return left, right


def _body_span(
    ax: Tensor, ay: Tensor, bx: Tensor, by: Tensor, radius: Tensor, yc: Tensor
) -> tuple[Tensor, Tensor]:
    """Columns where the row at `yc` crosses the rectangle swept by the segment."""
    dx, dy = bx - ax, by - ay
    length = torch.hypot(dx, dy)
    point = length < 1e-6
    safe = torch.where(point, torch.ones_like(length), length)
    ux = torch.where(point, torch.ones_like(dx), dx / safe)
    uy = torch.where(point, torch.zeros_like(dy), dy / safe)
    ry = yc - ay
    # Across the segment: |(x - ax) * nx + ry * ny| <= r with normal (nx, ny) = (-uy, ux).
    l1, r1 = _linear_span(-uy, ry * ux + ax * uy, -radius, radius)
    # Along the segment: 0 <= (x - ax) * ux + ry * uy <= length.
    l2, r2 = _linear_span(ux, ry * uy - ax * ux, torch.zeros_like(length), length)
    left, right = torch.maximum(l1, l2), torch.minimum(r1, r2)
    empty = left > right
    return left.masked_fill(empty, _INF), right.masked_fill(empty, -_INF)


def draw_segments(
    start: Tensor,
    end: Tensor,
    radius: Tensor,
    active: Tensor,
    height: int,
    width: int,
    max_extent: float,
) -> Tensor:
    """Rasterise capsules into float {0,1} masks of shape B x 1 x H x W.

    `start`, `end`: B x N x 2 endpoints (x, y) in pixels, pixel (i, j) covering
    [j, j+1) x [i, i+1); `radius`: B x N in pixels (at least 0.5 is used so every line is
    connected); `active`: B x N bool, inactive segments are skipped; `max_extent`: an upper
    bound on |y_end - y_start| + 2 * radius over all segments, which sizes the row window.
    """
    batch, _ = radius.shape
    device = start.device
    rows_per = min(height, math.ceil(max_extent) + 3)
    radius = radius.clamp_min(0.5)
    ax, ay = start.unbind(-1)
    bx, by = end.unbind(-1)
    first = (torch.minimum(ay, by) - radius).floor().long().clamp(0, height - rows_per)
    rows = first.unsqueeze(-1) + torch.arange(rows_per, device=device)
    yc = rows + 0.5
    ax, ay, bx, by, radius = (t.unsqueeze(-1) for t in (ax, ay, bx, by, radius))
    spans = (
        _disk_span(ax, ay, radius, yc),
        _disk_span(bx, by, radius, yc),
        _body_span(ax, ay, bx, by, radius, yc),
    )
    left = torch.minimum(torch.minimum(spans[0][0], spans[1][0]), spans[2][0])
    right = torch.maximum(torch.maximum(spans[0][1], spans[1][1]), spans[2][1])
    # Pixel column j is inside when its centre j + 0.5 lies in [left, right].
    col0 = (left - 0.5).clamp(-1.0, width + 1.0).ceil().long().clamp(0, width)
    col1 = (right - 0.5).clamp(-2.0, float(width)).floor().long().clamp(-1, width - 1)
    weight = ((col0 <= col1) & active.unsqueeze(-1)).float().flatten()
    stride = width + 1
    base = (torch.arange(batch, device=device).view(-1, 1, 1) * height + rows) * stride
    diff = torch.zeros(batch * height * stride, device=device)
    diff.index_add_(0, (base + col0).flatten(), weight)
    diff.index_add_(0, (base + col1 + 1).flatten(), -weight)
    cover = diff.view(batch, height, stride).cumsum(dim=-1)[..., :width]
    return (cover > 0.5).float().unsqueeze(1)

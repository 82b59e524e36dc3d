"""The evaluation's pictures: the same samples for every method, and scores per hole-ratio bin."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

PAD = 2
MIN_TILE = 128  # small images are enlarged (nearest) to at least this width, for the header
HEADER = 20
PLOT_SIZE = (10, 4)  # inches; at PLOT_DPI this is the PNG size
PLOT_DPI = 100
PLOTTED = ("psnr", "ssim")
PLOT_TITLES = {"psnr": "PSNR (dB)", "ssim": "SSIM"}


def tile_scale(width: int) -> int:
    """Whole-number enlargement that makes a tile at least MIN_TILE pixels wide."""
    return max(1, math.ceil(MIN_TILE / width))


def sample_sheet(columns: list[tuple[str, Tensor]]) -> Image.Image:
    """An RGB sheet: one row per sample, one column per (title, N x C x H x W images in
    [0, 1]) pair of `columns`, C = 1 or 3, titled at the top."""
    tiles = torch.stack([t.expand(-1, 3, -1, -1).clamp(0, 1) for _, t in columns], dim=1)
    width = tiles.shape[-1]
    scale = tile_scale(width)
    tiles = F.interpolate(tiles.flatten(0, 1), scale_factor=scale, mode="nearest")
    grid = torchvision.utils.make_grid(tiles, nrow=len(columns), padding=PAD, pad_value=1.0)
    body = Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy())
    sheet = Image.new("RGB", (body.width, body.height + HEADER), "white")
    sheet.paste(body, (0, HEADER))
    draw_titles(ImageDraw.Draw(sheet), [title for title, _ in columns], width * scale)
    return sheet


def draw_titles(draw: ImageDraw.ImageDraw, titles: list[str], tile: int) -> None:
    """Each title centred over its column, shortened with "..." when it does not fit."""
    font = ImageFont.load_default()
    for index, title in enumerate(titles):
        text = fitted(draw, title, font, tile - 4)
        left = PAD + index * (tile + PAD) + (tile - draw.textlength(text, font=font)) / 2
        draw.text((left, 4), text, fill="black", font=font)


def fitted(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    """`text`, or its longest start that fits `width` pixels followed by "..."."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def save_sample_sheet(columns: list[tuple[str, Tensor]], path: Path) -> Path:
    sample_sheet(columns).save(path)
    return path


def save_per_bin_plot(results: dict[str, dict[str, dict[str, float]]], path: Path) -> Path:
    """PSNR and SSIM per hole-ratio bin, one line per method, side by side (PNG)."""
    from matplotlib.figure import Figure  # the [eval] extra

    figure = Figure(figsize=PLOT_SIZE, dpi=PLOT_DPI, layout="constrained")
    axes = figure.subplots(1, len(PLOTTED))
    bins = [g for g in next(iter(results.values())) if g != "all"]
    for ax, metric in zip(axes, PLOTTED, strict=True):
        for method, groups in results.items():
            values = [groups[b].get(metric, math.nan) for b in bins]
            ax.plot(range(len(bins)), values, marker="o", label=method)
        ax.set_xticks(range(len(bins)), [f"{b} %" for b in bins])
        ax.set_xlabel("hole ratio")
        ax.set_title(PLOT_TITLES[metric])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    figure.savefig(path, dpi=PLOT_DPI)
    return path

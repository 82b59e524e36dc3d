"""The `inpaintlab` command: mask previews, Hydra overrides, one-line errors, help."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inpaintlab.apps.cli import build_parser, main
from inpaintlab.apps.masks_preview import GAP, STRIP

SMALL = ("--size", "40", "--rows", "2", "--cols", "3")


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Run from an empty folder: conf/ is found beside the package, outputs land in tmp_path."""
    monkeypatch.chdir(tmp_path)


def preview(*args: str) -> int:
    return main(["masks", *args])


def tile_hole_fractions(path: Path, rows: int, cols: int, size: int) -> np.ndarray:
    """The white (hole) fraction of every mask tile of a preview sheet, row by row."""
    sheet = np.asarray(Image.open(path).convert("L"))
    step_x, step_y = size + GAP, size + STRIP + GAP
    return np.array(
        [
            (sheet[top : top + size, left : left + size] == 255).mean()
            for top in range(GAP, GAP + rows * step_y, step_y)
            for left in range(GAP, GAP + cols * step_x, step_x)
        ]
    )


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize(
    ("kind", "rows", "cols", "size"),
    [("center", 2, 3, 40), ("boxes", 1, 4, 24), ("freeform", 3, 2, 32)],
)
def test_masks_preview_has_one_tile_per_mask(tmp_path, kind, rows, cols, size):
    out = tmp_path / f"{kind}.png"
    args = ("--rows", str(rows), "--cols", str(cols), "--size", str(size), "--out", str(out))
    assert preview(kind, *args) == 0
    width, height = Image.open(out).size
    assert (width, height) == (cols * (size + GAP) + GAP, rows * (size + STRIP + GAP) + GAP)
    holes = tile_hole_fractions(out, rows, cols, size)
    assert holes.shape == (rows * cols,) and (holes > 0).all() and (holes < 1).all()


def test_center_preview_shows_the_configured_centre_box(tmp_path):
    out = tmp_path / "center.png"
    assert preview("center", "mask.size=0.5", "mask.inset=0", *SMALL, "--out", str(out)) == 0
    assert tile_hole_fractions(out, 2, 3, 40) == pytest.approx(np.full(6, 0.25))


def test_hydra_overrides_reach_the_mask_generator(tmp_path):
    default, bounded = tmp_path / "default.png", tmp_path / "bounded.png"
    assert preview("freeform", *SMALL, "--out", str(default)) == 0
    assert preview("freeform", "mask.min_ratio=0.3", *SMALL, "--out", str(bounded)) == 0
    assert tile_hole_fractions(default, 2, 3, 40).min() < 0.3
    assert tile_hole_fractions(bounded, 2, 3, 40).min() >= 0.3


def test_existing_output_is_kept_without_force(tmp_path, capsys):
    out = tmp_path / "masks.png"
    out.write_bytes(b"earlier work")
    assert preview("center", *SMALL, "--out", str(out)) == 2
    assert out.read_bytes() == b"earlier work"
    assert "--force" in one_error_line(capsys)
    assert preview("center", *SMALL, "--out", str(out), "--force") == 0
    assert Image.open(out).format == "PNG"


@pytest.mark.parametrize("name", ["masks.jpg", "masks"])
def test_the_preview_is_written_only_under_a_png_name(tmp_path, capsys, name):
    assert preview("center", *SMALL, "--out", str(tmp_path / name)) == 2
    assert ".png name" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_unknown_mask_name_lists_the_available_ones(tmp_path, capsys):
    assert preview("nosuch", *SMALL, "--out", str(tmp_path / "x.png")) == 2
    line = one_error_line(capsys)
    assert "'nosuch'" in line
    assert all(name in line for name in ("center", "freeform", "irregular_thin", "scratches"))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("mask.no_such_key=3", "no_such_key"),
        ("mask.min_ratio=[", "mask.min_ratio=["),
        ("augment=nope", "'nope'"),
        ("mask.min_ratio=1.5", "min_ratio"),
    ],
)
def test_bad_overrides_give_one_line_errors(tmp_path, capsys, override, fragment):
    assert preview("freeform", override, *SMALL, "--out", str(tmp_path / "x.png")) == 2
    assert fragment in one_error_line(capsys)


def test_folder_masks_need_a_root(tmp_path, capsys):
    assert preview("folder", *SMALL, "--out", str(tmp_path / "x.png")) == 2
    assert "mask.root" in one_error_line(capsys)


@pytest.mark.parametrize("option", ["--size", "--rows", "--cols"])
def test_sizes_must_be_positive(tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exited:
        preview("center", option, "0", "--out", str(tmp_path / "x.png"))
    assert exited.value.code == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_help_mentions_every_sub_command(capsys):
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {
        "train",
        "eval",
        "masks",
        "inpaint",
        "export",
        "release",
        "app",
    }
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert all(name in text for name in commands.choices)


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("inpaintlab")
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: inpaintlab") and "masks" in result.stdout

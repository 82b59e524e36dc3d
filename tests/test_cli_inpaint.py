"""`inpaintlab inpaint` on files and folders: formats, masks, sizes, safety, one-line errors."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from inpaintlab.apps.cli import build_parser, main
from inpaintlab.data.io import load_image
from tests.tiny_checkpoints import KINDS, save_tiny_checkpoints


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))


def random_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def centred_box(height: int, width: int, grow: int = 0) -> tuple[slice, slice]:
    """Rows and columns of a hole well inside the centre (every model kind can fill it)."""
    top, left = height * 3 // 8 - grow, width * 3 // 8 - grow
    return slice(top, height * 5 // 8 + grow), slice(left, width * 5 // 8 + grow)


def box_mask(height: int, width: int, grow: int = 0, value: int = 255) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[centred_box(height, width, grow)] = value
    return mask


def save(array: np.ndarray, path: Path, **kwargs) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def inpaint(ckpt_path: Path, image: Path, mask: Path | str, out: Path, *options: str) -> int:
    args = ["--ckpt", str(ckpt_path), "--image", str(image), "--mask", str(mask)]
    return main(["inpaint", *args, "--out", str(out), *options])


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture
def photo(tmp_path):
    """A 45 x 61 RGB PNG photo and a mask file with a centred hole."""
    image = save(random_rgb(45, 61), tmp_path / "photo.png")
    return image, save(box_mask(45, 61), tmp_path / "mask.png")


def assert_known_pixels_kept(result: np.ndarray, original: np.ndarray, mask: np.ndarray):
    assert result.shape == original.shape
    known = mask == 0
    assert np.array_equal(result[known], original[known])


@pytest.mark.parametrize("kind", KINDS)
def test_odd_sized_photo_keeps_its_size_and_known_pixels(ckpt, tmp_path, kind):
    original, mask = random_rgb(333, 517), box_mask(333, 517)
    image, mask_file = save(original, tmp_path / "p.png"), save(mask, tmp_path / "m.png")
    assert inpaint(ckpt[kind], image, mask_file, tmp_path / "out.png") == 0
    result = pixels(tmp_path / "out.png")
    assert_known_pixels_kept(result, original, mask)
    assert not np.array_equal(result[mask > 0], original[mask > 0])


def test_greyscale_photo_gives_a_greyscale_result(ckpt, tmp_path):
    grey = random_rgb(45, 61)[..., 0]
    image, mask = save(grey, tmp_path / "g.png"), box_mask(45, 61)
    assert inpaint(ckpt["pconv"], image, save(mask, tmp_path / "m.png"), tmp_path / "o.png") == 0
    assert Image.open(tmp_path / "o.png").mode == "L"
    assert_known_pixels_kept(pixels(tmp_path / "o.png"), grey, mask)


def rgba_photo(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """An RGBA photo transparent in the centred box, half transparent in a corner."""
    rgb = random_rgb(45, 61)
    alpha = 255 - box_mask(45, 61)
    alpha[:8, :8] = 200  # mostly opaque: known at the default threshold
    return save(np.dstack([rgb, alpha]), tmp_path / "rgba.png"), rgb, alpha


def test_rgba_alpha_is_ignored_with_a_mask_file(ckpt, tmp_path):
    image, rgb, _ = rgba_photo(tmp_path)
    mask = box_mask(45, 61, grow=2)
    assert inpaint(ckpt["pconv"], image, save(mask, tmp_path / "m.png"), tmp_path / "o.png") == 0
    assert Image.open(tmp_path / "o.png").mode == "RGB"
    assert_known_pixels_kept(pixels(tmp_path / "o.png"), rgb, mask)


def test_mask_alpha_makes_transparent_pixels_the_holes(ckpt, tmp_path):
    image, rgb, alpha = rgba_photo(tmp_path)
    assert inpaint(ckpt["pconv"], image, "alpha", tmp_path / "from_alpha.png") == 0
    same_holes = save(255 - alpha, tmp_path / "m.png")  # 55 in the corner: known
    assert inpaint(ckpt["pconv"], image, same_holes, tmp_path / "from_file.png") == 0
    assert np.array_equal(pixels(tmp_path / "from_alpha.png"), pixels(tmp_path / "from_file.png"))
    assert_known_pixels_kept(pixels(tmp_path / "from_alpha.png"), rgb, 255 - alpha > 128)


def test_mask_alpha_needs_an_alpha_channel(ckpt, photo, tmp_path, capsys):
    assert inpaint(ckpt["pconv"], photo[0], "alpha", tmp_path / "o.png") == 2
    assert "no alpha channel" in one_error_line(capsys)


def test_sixteen_bit_photo_is_written_as_eight_bit(ckpt, tmp_path):
    deep = np.random.default_rng(0).integers(0, 65536, (45, 61)).astype(np.uint16)
    image, mask = save(deep, tmp_path / "deep.png"), box_mask(45, 61)
    assert Image.open(image).mode.startswith("I")
    assert inpaint(ckpt["pconv"], image, save(mask, tmp_path / "m.png"), tmp_path / "o.png") == 0
    expected = np.round(deep / 65535 * 255).astype(np.uint8)
    assert Image.open(tmp_path / "o.png").mode == "L"
    assert_known_pixels_kept(pixels(tmp_path / "o.png"), expected, mask)


def test_exif_rotated_jpeg_is_inpainted_upright(ckpt, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 x 64, shown rotated 90 degrees clockwise: 64 x 40
    image = save(random_rgb(40, 64), tmp_path / "r.jpg", exif=exif, quality=95)
    upright = load_image(image).permute(1, 2, 0).numpy()
    mask = box_mask(64, 40)
    assert inpaint(ckpt["pconv"], image, save(mask, tmp_path / "m.png"), tmp_path / "o.png") == 0
    assert_known_pixels_kept(pixels(tmp_path / "o.png"), upright, mask)


def test_mask_of_another_size_is_an_error_naming_both_sizes(ckpt, photo, tmp_path, capsys):
    small = save(box_mask(30, 40), tmp_path / "small.png")
    assert inpaint(ckpt["pconv"], photo[0], small, tmp_path / "o.png") == 2
    line = one_error_line(capsys)
    assert "30x40" in line and "45x61" in line and "--resize-mask" in line
    assert not (tmp_path / "o.png").exists()


def test_resize_mask_resizes_by_nearest_neighbour(ckpt, photo, tmp_path):
    double = np.kron(box_mask(45, 61), np.ones((2, 2), dtype=np.uint8))
    big = save(double, tmp_path / "big.png")
    assert inpaint(ckpt["pconv"], photo[0], big, tmp_path / "o.png", "--resize-mask") == 0
    assert inpaint(ckpt["pconv"], *photo, tmp_path / "native.png") == 0
    assert np.array_equal(pixels(tmp_path / "o.png"), pixels(tmp_path / "native.png"))


def run_with_mask(ckpt_path, image, mask: np.ndarray, out: Path, *options) -> np.ndarray:
    assert inpaint(ckpt_path, image, save(mask, out.with_suffix(".mask.png")), out, *options) == 0
    return pixels(out)


@pytest.mark.parametrize(
    ("options", "holes"),
    [((), "bright"), (("--threshold", "0.3"), "both"), (("--mask-hole", "black"), "dark")],
)
def test_grey_mask_levels_are_thresholded(ckpt, photo, tmp_path, options, holes):
    grey = np.zeros((45, 61), dtype=np.uint8)
    grey[5:15, 5:20], grey[25:35, 30:50] = 200, 100
    bright, dark = grey == 200, (grey < 128) & (grey != 0)
    if options == ("--mask-hole", "black"):
        grey = 255 - grey  # the 100 box becomes 155, the 200 box 55; black marks the holes
        dark = grey == 55
    binary = {"bright": bright, "both": grey > 0.3 * 255, "dark": dark}[holes]
    result = run_with_mask(ckpt["pconv"], photo[0], grey, tmp_path / "grey.png", *options)
    reference = run_with_mask(
        ckpt["pconv"], photo[0], binary.astype(np.uint8) * 255, tmp_path / "bin.png"
    )
    assert np.array_equal(result, reference)


def test_dilate_grows_the_holes_by_n_pixels(ckpt, photo, tmp_path):
    mask = box_mask(45, 61)
    dilated = run_with_mask(ckpt["pconv"], photo[0], mask, tmp_path / "d.png", "--dilate", "2")
    grown = run_with_mask(ckpt["pconv"], photo[0], box_mask(45, 61, grow=2), tmp_path / "g.png")
    assert np.array_equal(dilated, grown)


def test_empty_mask_writes_the_photo_unchanged(ckpt, photo, tmp_path, capsys):
    empty = save(np.zeros((45, 61), dtype=np.uint8), tmp_path / "empty.png")
    assert inpaint(ckpt["pconv"], photo[0], empty, tmp_path / "o.png") == 0
    assert np.array_equal(pixels(tmp_path / "o.png"), pixels(photo[0]))
    assert "no holes" in capsys.readouterr().err


def test_full_mask_works_and_warns(ckpt, photo, tmp_path, capsys):
    full = save(np.full((45, 61), 255, dtype=np.uint8), tmp_path / "full.png")
    assert inpaint(ckpt["edgeconnect"], photo[0], full, tmp_path / "o.png") == 0
    assert pixels(tmp_path / "o.png").shape == (45, 61, 3)
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "whole image" in err


def test_a_full_mask_the_centre_model_cannot_fill_is_one_error_and_no_warning(
    ckpt, photo, tmp_path, capsys
):
    full = save(np.full((45, 61), 255, dtype=np.uint8), tmp_path / "full.png")
    assert inpaint(ckpt["ce_center"], photo[0], full, tmp_path / "o.png") == 2
    one_error_line(capsys)  # the whole of stderr: no warning before the refusal
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("existing", ["out", "compare"])
def test_existing_outputs_are_never_overwritten_without_overwrite(
    ckpt, photo, tmp_path, capsys, existing
):
    out = tmp_path / "o.png"
    kept = out if existing == "out" else tmp_path / "o_compare.png"
    kept.write_bytes(b"earlier work")
    assert inpaint(ckpt["pconv"], *photo, out, "--compare") == 2
    assert "--overwrite" in one_error_line(capsys)
    assert kept.read_bytes() == b"earlier work"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["photo.png", "mask.png", kept.name]
    )
    assert inpaint(ckpt["pconv"], *photo, out, "--compare", "--overwrite") == 0
    assert Image.open(kept).format == "PNG"


def test_compare_sheet_shows_input_mask_and_result(ckpt, photo, tmp_path):
    out = tmp_path / "result.png"
    assert inpaint(ckpt["pconv"], *photo, out, "--compare") == 0
    sheet = pixels(tmp_path / "result_compare.png")
    gap = 8
    assert sheet.shape == (45 + 2 * gap, 3 * 61 + 4 * gap, 3)
    tiles = [
        sheet[gap : gap + 45, gap + i * (61 + gap) : gap + i * (61 + gap) + 61] for i in range(3)
    ]
    assert np.array_equal(tiles[0], pixels(photo[0]))
    assert np.array_equal(tiles[1][..., 0], pixels(photo[1]))
    assert np.array_equal(tiles[2], pixels(out))


def test_output_format_follows_the_extension(ckpt, photo, tmp_path, capsys):
    assert inpaint(ckpt["pconv"], *photo, tmp_path / "o.jpg") == 0
    assert Image.open(tmp_path / "o.jpg").format == "JPEG"
    assert inpaint(ckpt["pconv"], *photo, tmp_path / "o.gif") == 2
    assert ".png or .jpg" in one_error_line(capsys)


def folder_of(tmp_path: Path, name: str, files: dict[str, np.ndarray]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file_name, array in files.items():
        save(array, folder / file_name)
    return folder


def test_folder_mode_pairs_photos_and_masks_by_name(ckpt, tmp_path, capsys):
    photos = {"a.png": random_rgb(40, 56), "b.jpg": random_rgb(33, 47, seed=1)}
    images = folder_of(tmp_path, "photos", photos)
    masks = folder_of(tmp_path, "masks", {"a.png": box_mask(40, 56), "b.png": box_mask(33, 47)})
    out = tmp_path / "results"
    assert inpaint(ckpt["pconv"], images, masks, out, "--compare") == 0
    names = ["a.png", "a_compare.png", "b.png", "b_compare.png"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert_known_pixels_kept(pixels(out / "a.png"), photos["a.png"], box_mask(40, 56))
    assert pixels(out / "b.png").shape == (33, 47, 3)
    assert "wrote 2 results" in capsys.readouterr().out


def test_unpaired_folders_list_the_lonely_names(ckpt, tmp_path, capsys):
    rgb = random_rgb(20, 24)
    images = folder_of(tmp_path, "photos", {f"{n}.png": rgb for n in "abc"})
    masks = folder_of(tmp_path, "masks", {"a.png": box_mask(20, 24), "d.png": box_mask(20, 24)})
    assert inpaint(ckpt["pconv"], images, masks, tmp_path / "results") == 2
    line = one_error_line(capsys)
    assert "photos without a mask: b, c" in line and "masks without a photo: d" in line
    assert not (tmp_path / "results").exists()


def test_cuda_is_a_one_line_error_where_there_is_none(ckpt, photo, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert inpaint(ckpt["pconv"], *photo, tmp_path / "o.png", "--device", "cuda") == 2
    assert "CUDA is not available" in one_error_line(capsys)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def edited_checkpoint(source: Path, bad: Path, damage: str) -> None:
    """`source` with its model class renamed, or with one weight left out, saved to `bad`."""
    checkpoint = torch.load(source, weights_only=True)
    if damage == "unknown_class":
        checkpoint["inpaintlab"]["model"] = "inpaintlab.models.partial_conv.NoSuchModule"
    else:
        checkpoint["state_dict"].pop(next(iter(checkpoint["state_dict"])))
    torch.save(checkpoint, bad)


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("crafted", "could run code"),
        ("truncated", "truncated"),
        ("missing", "does not exist"),
        ("random_bytes", "not a checkpoint"),
        ("folder", "is a folder"),
        ("unknown_class", "does not have"),
        ("missing_key", "do not fit"),
    ],
)
def test_bad_checkpoints_are_one_line_errors(ckpt, photo, tmp_path, capsys, damage, says):
    bad, marker = tmp_path / "bad.ckpt", tmp_path / "pwned"
    if damage == "crafted":
        torch.save({"inpaintlab": {}, "payload": Payload(marker)}, bad)
    elif damage == "truncated":
        bad.write_bytes(ckpt["pconv"].read_bytes()[:-100])
    elif damage == "random_bytes":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "folder":
        bad.mkdir()
    elif damage in ("unknown_class", "missing_key"):
        edited_checkpoint(ckpt["pconv"], bad, damage)
    assert inpaint(bad, *photo, tmp_path / "o.png") == 2
    line = one_error_line(capsys)
    assert "bad.ckpt" in line or damage in ("unknown_class", "missing_key")
    assert says in line
    assert not marker.exists() and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    ("image", "problem"), [("nothing.png", "does not exist"), ("bad.png", "cannot decode")]
)
def test_unreadable_photos_are_one_line_errors(ckpt, photo, tmp_path, capsys, image, problem):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert inpaint(ckpt["pconv"], tmp_path / image, photo[1], tmp_path / "o.png") == 2
    assert problem in one_error_line(capsys)


def test_help_describes_every_option(capsys):
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = [o for a in commands.choices["inpaint"]._actions for o in a.option_strings]
    with pytest.raises(SystemExit):
        main(["inpaint", "--help"])
    text = capsys.readouterr().out
    assert all(option in text for option in options)
    assert "--threshold" in options and "default: 0.5" in text and "_compare.png" in text
    for phrase in ("greyscale", "RGBA", "16-bit", "EXIF", "alpha", "pair"):
        assert phrase in text


def test_console_script_inpaints_a_photo(ckpt, photo, tmp_path):
    script = Path(sys.executable).with_name("inpaintlab")
    args = ["--ckpt", str(ckpt["pconv"]), "--image", str(photo[0]), "--mask", str(photo[1])]
    result = subprocess.run(
        [str(script), "inpaint", *args, "--out", str(tmp_path / "o.png")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {tmp_path / 'o.png'}"
    assert pixels(tmp_path / "o.png").shape == (45, 61, 3)


def file_hashes(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: what a refused command must leave alone."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("victim", ["image", "mask", "compare"])
def test_an_output_never_replaces_an_input(ckpt, photo, tmp_path, capsys, victim):
    image, mask = photo
    out = {"image": image, "mask": mask, "compare": tmp_path / "photo_compare.png"}[victim]
    if victim == "compare":  # o.png's sheet would be photo_compare.png if --image were that
        image = save(random_rgb(45, 61), tmp_path / "photo_compare.png")
        out = tmp_path / "photo.png"
    before = file_hashes(tmp_path)
    assert inpaint(ckpt["pconv"], image, mask, out, "--compare", "--overwrite") == 2
    assert "would replace an input" in one_error_line(capsys)
    assert file_hashes(tmp_path) == before


def test_a_folder_run_checks_every_pair_before_writing_anything(ckpt, tmp_path, capsys):
    photos = {"a.png": random_rgb(40, 56), "b.png": random_rgb(33, 47, seed=1)}
    images = folder_of(tmp_path, "photos", photos)
    # b's mask has a's size: the run must refuse before a's result is written
    masks = folder_of(tmp_path, "masks", {"a.png": box_mask(40, 56), "b.png": box_mask(40, 56)})
    out = tmp_path / "results"
    assert inpaint(ckpt["pconv"], images, masks, out) == 2
    assert "33x47" in one_error_line(capsys)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("where", ["parent_is_a_file", "read_only"])
def test_an_unwritable_out_is_refused_before_inpainting(ckpt, photo, tmp_path, capsys, where):
    if where == "parent_is_a_file":
        out = save(random_rgb(4, 4), tmp_path / "file.png") / "o.png"
    else:
        out = Path("/proc/o.png")
    before = file_hashes(tmp_path)
    assert inpaint(ckpt["pconv"], *photo, out) == 2
    assert "cannot write into" in one_error_line(capsys)
    assert file_hashes(tmp_path) == before


def coloured_mask(height: int, width: int, colour: tuple[int, ...]) -> np.ndarray:
    """A box mask painted in `colour` (RGB or RGBA) on black (or fully transparent)."""
    mask = np.zeros((height, width, len(colour)), dtype=np.uint8)
    mask[centred_box(height, width)] = colour
    return mask


@pytest.mark.parametrize(
    "colour",
    [(255, 0, 0), (0, 255, 0), (0, 0, 255, 255), (255, 255, 255, 255), (0, 0, 0, 255)],
    ids=["red", "green", "blue_on_transparent", "white_on_transparent", "black_on_transparent"],
)
def test_coloured_and_alpha_masks_mark_their_painted_pixels_as_holes(ckpt, photo, tmp_path, colour):
    image, _ = photo
    mask = save(coloured_mask(45, 61, colour), tmp_path / "painted.png")
    assert inpaint(ckpt["pconv"], image, mask, tmp_path / "o.png") == 0
    result, original = pixels(tmp_path / "o.png"), pixels(image)
    hole = box_mask(45, 61) > 0
    assert_known_pixels_kept(result, original, box_mask(45, 61))
    assert not np.array_equal(result[hole], original[hole])


def cut_short_jpeg(path: Path, height: int, width: int) -> Path:
    """A JPEG of random pixels whose compressed data stops halfway, then an end marker."""
    buffer = io.BytesIO()
    Image.fromarray(random_rgb(height, width, 0)).save(buffer, "JPEG")
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2] + b"\xff\xd9")
    return path


def test_a_jpeg_cut_short_is_refused_not_inpainted_with_grey_rows(ckpt, photo, tmp_path, capsys):
    broken = cut_short_jpeg(tmp_path / "cut.jpg", 45, 61)
    before = broken.read_bytes()
    assert inpaint(ckpt["pconv"], broken, photo[1], tmp_path / "o.png") == 2
    line = one_error_line(capsys)
    assert "cut.jpg ends in flat grey rows" in line and "re-export" in line
    assert not (tmp_path / "o.png").exists() and broken.read_bytes() == before


def test_complete_jpegs_with_grey_parts_are_read(tmp_path):
    pixels_in = random_rgb(45, 61, 1)
    pixels_in[-8:] = 127  # a grey band at the bottom of an otherwise busy picture
    Image.fromarray(pixels_in).save(tmp_path / "band.jpg", quality=100)
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "flat.jpg")
    assert load_image(tmp_path / "band.jpg").shape == (3, 45, 61)
    assert load_image(tmp_path / "flat.jpg").shape == (3, 16, 16)  # grey all over is a picture


def test_animated_images_are_refused(ckpt, photo, tmp_path, capsys):
    frames = [Image.fromarray(random_rgb(45, 61, seed)) for seed in range(3)]
    animation = tmp_path / "anim.gif"
    frames[0].save(animation, save_all=True, append_images=frames[1:])
    assert inpaint(ckpt["pconv"], animation, photo[1], tmp_path / "o.png") == 2
    assert "3 frames" in one_error_line(capsys)
    assert not (tmp_path / "o.png").exists()

"""Tests for the mask generators in inpaintlab.data.masks."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from PIL import Image

from inpaintlab.conf import CONFIG_DIR
from inpaintlab.data import masks as M
from inpaintlab.data.masks import folder as folder_module
from inpaintlab.data.masks.base import area_boxes
from inpaintlab.data.masks.raster import draw_segments
from inpaintlab.errors import ConfigError, DataError
from tests.helpers import mask_from_config

CONF_DIR = CONFIG_DIR
H, W = 40, 48  # non-square on purpose

# Each factory takes the synthetic mask folder and ratio-bound keywords.
FACTORIES = {
    "center": lambda root, **b: M.CenterBoxMask(0.5, inset=2, **b),
    "boxes": lambda root, **b: M.RandomBoxMask(**b),
    "freeform": lambda root, **b: M.FreeFormMask(**b),
    "irregular_thin": lambda root, **b: mask_from_config("irregular_thin", **b),
    "irregular_medium": lambda root, **b: mask_from_config("irregular_medium", **b),
    "irregular_thick": lambda root, **b: mask_from_config("irregular_thick", **b),
    "scratches": lambda root, **b: M.ScratchMask(**b),
    "folder": lambda root, **b: M.FolderMask(root, dilate=(0, 2), max_angle=5.0, **b),
    "mixture": lambda root, **b: M.MixtureMask(
        [M.FreeFormMask(), M.RandomBoxMask(), M.ScratchMask()], [0.4, 0.4, 0.2], **b
    ),
}
RANDOM_KINDS = [k for k in FACTORIES if k != "center"]


def seeded(seed: int) -> torch.Generator:
    """A CPU torch.Generator with a fixed seed."""
    return torch.Generator().manual_seed(seed)


def save_mask(path: Path, array: np.ndarray) -> Path:
    """Write a bool array as a white-on-black image (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8) * 255).save(path)
    return path


def folder_of(tmp_path: Path, array: np.ndarray, **kwargs) -> M.FolderMask:
    """A FolderMask over a folder holding just `array`, without augmentation by default."""
    save_mask(tmp_path / "only.png", array)
    return M.FolderMask(tmp_path, **{"flip": False, "rotate": False, **kwargs})


def assert_binary(masks: torch.Tensor, batch: int, height: int, width: int) -> None:
    """Check the mask contract: float32 B x 1 x H x W with values in {0, 1}."""
    assert masks.shape == (batch, 1, height, width)
    assert masks.dtype == torch.float32
    assert ((masks == 0) | (masks == 1)).all()


@pytest.fixture(scope="module")
def mask_dir(tmp_path_factory) -> Path:
    """A folder of random blob masks of mixed sizes and formats, with a subfolder."""
    root = tmp_path_factory.mktemp("masks")
    rng = np.random.default_rng(0)
    for i in range(6):
        size = (32, 32) if i % 2 else (24, 36)
        blobs = rng.random((size[0] // 4, size[1] // 4)) < 0.4
        suffix = [".png", ".bmp", ".webp"][i % 3]
        path = root / ("sub" if i > 3 else "") / f"m{i}{suffix}"
        save_mask(path, blobs.repeat(4, axis=0).repeat(4, axis=1))
    (root / "notes.txt").write_text("not a mask")
    return root


# ---------------------------------------------------------------- contract for every kind


@pytest.mark.parametrize("kind", FACTORIES)
def test_contract_shape_dtype_values_device(kind, mask_dir):
    gen = FACTORIES[kind](mask_dir)
    masks = gen(5, H, W, generator=seeded(0), device=torch.device("cpu"))
    assert_binary(masks, 5, H, W)
    assert masks.device.type == "cpu"
    assert_binary(gen(2, 16, 16), 2, 16, 16)  # default RNG, default device
    assert masks.sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", FACTORIES)
def test_generates_on_the_gpu_with_a_gpu_generator(kind, mask_dir):
    gen = FACTORIES[kind](mask_dir, max_ratio=0.5)
    rng = torch.Generator(device="cuda").manual_seed(0)
    masks = gen(4, H, W, generator=rng)
    assert masks.device.type == "cuda"
    assert_binary(masks, 4, H, W)
    assert torch.equal(masks, gen(4, H, W, generator=torch.Generator("cuda").manual_seed(0)))


@pytest.mark.parametrize("kind", FACTORIES)
def test_same_seed_same_masks_different_seed_different(kind, mask_dir):
    gen = FACTORIES[kind](mask_dir)
    first = gen(8, H, W, generator=seeded(1))
    assert torch.equal(first, gen(8, H, W, generator=seeded(1)))
    other = gen(8, H, W, generator=seeded(2))
    assert torch.equal(first, other) == (kind == "center")  # only the centre box is fixed


@pytest.mark.parametrize("kind", FACTORIES)
def test_hole_ratio_stays_within_bounds(kind, mask_dir):
    gen = FACTORIES[kind](mask_dir, min_ratio=0.1, max_ratio=0.3, max_tries=3)
    ratios = M.hole_ratio(gen(64, H, W, generator=seeded(3)))
    assert ratios.min() >= 0.1 - 1e-6
    assert ratios.max() <= 0.3 + 1e-6


def test_redraws_come_from_the_generator_and_fallback_is_an_exact_box():
    # Free-form masks often fall in [0.1, 0.3]: after redraws no box fallback is needed.
    bounded = M.FreeFormMask(min_ratio=0.1, max_ratio=0.3, max_tries=20)
    masks = bounded(32, H, W, generator=seeded(4))
    boxes = [m for m in masks[:, 0] if _is_filled_rectangle(m)]
    assert len(boxes) < 4
    # Scratches never reach half the image: every sample becomes a box of exactly that area.
    forced = M.ScratchMask(min_ratio=0.5, max_tries=2)(6, H, W, generator=seeded(4))
    assert (forced.flatten(1).sum(1) == H * W // 2).all()


def _is_filled_rectangle(mask: torch.Tensor) -> bool:
    """True when the hole pixels fill their bounding box exactly."""
    rows, cols = mask.nonzero().unbind(1)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    return bool(box == mask.sum())


def test_area_boxes_have_exact_counts_and_fit():
    counts = torch.tensor([0, 1, 7, 100, H * W - 3, H * W])
    boxes = area_boxes(counts, H, W, seeded(0), "cpu")
    assert_binary(boxes, len(counts), H, W)
    assert torch.equal(boxes.flatten(1).sum(1).long(), counts)


def test_invalid_or_unreachable_bounds_raise_config_error():
    with pytest.raises(ConfigError):
        M.FreeFormMask(min_ratio=0.6, max_ratio=0.4)
    with pytest.raises(ConfigError):
        M.RandomBoxMask(max_tries=-1)
    with pytest.raises(ConfigError):  # no 3x3 mask has a ratio in [0.5, 0.51]
        M.RandomBoxMask(min_ratio=0.5, max_ratio=0.51)(1, 3, 3)
    with pytest.raises(ConfigError):
        M.RandomBoxMask(count=(3, 1))


def test_hole_ratio_is_the_fraction_of_hole_pixels():
    mask = torch.zeros(2, 1, 4, 5)
    mask[0, 0, :2, :] = 1
    assert torch.allclose(M.hole_ratio(mask), torch.tensor([0.5, 0.0]))


# ---------------------------------------------------------------- rasteriser


def _brute_capsules(start, end, radius, active, height, width):
    """Slow reference: pixel centres within `radius` of any active segment."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    p = torch.stack([xs, ys], -1)[None, None]
    a, d = start[:, :, None, None], (end - start)[:, :, None, None]
    t = (((p - a) * d).sum(-1) / d.square().sum(-1).clamp_min(1e-12)).clamp(0, 1)
    dist = (p - a - t.unsqueeze(-1) * d).norm(dim=-1)
    inside = dist <= radius.clamp_min(0.5)[:, :, None, None]
    return (inside & active[:, :, None, None]).any(1)


def test_draw_segments_matches_a_brute_force_distance_reference():
    g = seeded(5)
    batch, n, height, width = 3, 8, 30, 37
    start = torch.rand(batch, n, 2, generator=g) * torch.tensor([width, height])
    end = start + (torch.rand(batch, n, 2, generator=g) - 0.5) * 30
    end[0, 0] = start[0, 0]  # a dot
    end[1, 0, 1] = start[1, 0, 1]  # horizontal
    end[1, 1, 0] = start[1, 1, 0]  # vertical
    radius = torch.rand(batch, n, generator=g) * 5
    active = torch.rand(batch, n, generator=g) > 0.2
    extent = ((end - start)[..., 1].abs() + 2 * radius.clamp_min(0.5)).max().item()
    fast = draw_segments(start, end, radius, active, height, width, extent)[:, 0].bool()
    # Pixels exactly on the border may go either way: compare with a slightly smaller/larger r.
    inner = _brute_capsules(start, end, radius - 1e-3, active, height, width)
    outer = _brute_capsules(start, end, radius + 1e-3, active, height, width)
    assert (inner <= fast).all() and (fast <= outer).all()
    assert fast.sum() > 100


# ---------------------------------------------------------------- box kinds


def test_center_box_context_encoder_geometry():
    mask = M.CenterBoxMask(0.5, inset=4)(2, 128, 128)
    rows = mask[0, 0].any(1).nonzero().flatten()
    cols = mask[0, 0].any(0).nonzero().flatten()
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (36, 91, 36, 91)
    assert mask[0, 0].sum() == 56 * 56


def test_center_box_non_square_uses_shorter_side():
    mask = M.CenterBoxMask(0.5)(1, 40, 64)[0, 0]
    expected = torch.zeros(40, 64)
    expected[10:30, 22:42] = 1
    assert torch.equal(mask, expected)


def test_random_box_single_box_is_a_rectangle_of_the_configured_size():
    gen = M.RandomBoxMask(count=(1, 1), size=(0.25, 0.5))
    for mask in gen(16, H, W, generator=seeded(6))[:, 0]:
        assert _is_filled_rectangle(mask)
        rows = mask.any(1).sum().item()
        cols = mask.any(0).sum().item()
        assert 0.25 * H - 1 <= rows <= 0.5 * H + 1
        assert 0.25 * W - 1 <= cols <= 0.5 * W + 1


# ---------------------------------------------------------------- strokes and scratches


def _surviving_after_erosion(masks: torch.Tensor, radius: int) -> float:
    """Fraction of hole pixels left after eroding by a (2r+1) square."""
    eroded = -F.max_pool2d(-masks, 2 * radius + 1, stride=1, padding=radius)
    return (eroded.sum() / masks.sum()).item()


def test_irregular_presets_thin_strokes_are_narrower_than_thick():
    thin = mask_from_config("irregular_thin")(16, 128, 128, generator=seeded(7))
    thick = mask_from_config("irregular_thick")(16, 128, 128, generator=seeded(7))
    assert _surviving_after_erosion(thin, 4) < 0.2 * _surviving_after_erosion(thick, 4)


def test_irregular_presets_are_lamas_pixel_ranges_at_256_px():
    """LaMa's random_{thin,medium,thick}_256: length 10 + U(max_len), brush 5 + U(max_width)."""
    lama = {"thin": (50, 15, (4, 50)), "medium": (110, 55, (4, 5)), "thick": (210, 105, (1, 5))}
    for preset, (max_length, max_width, strokes) in lama.items():
        generator = mask_from_config(f"irregular_{preset}")
        assert type(generator) is M.FreeFormMask
        assert generator.strokes == strokes
        assert generator.segments == (1, 5)
        assert generator.length == (10 / 256, max_length / 256)
        assert generator.width == (5 / 256, max_width / 256)
        assert generator.angle == (0.0, 4.0)


def test_freeform_single_dot_is_a_disk_of_the_brush_width():
    gen = M.FreeFormMask(strokes=(1, 1), segments=(1, 1), length=(0, 0), width=(0.5, 0.5))
    masks = gen(8, 64, 64, generator=seeded(8))
    # radius 16 px: the disk may be cut by the border but never exceeds pi r^2
    areas = masks.flatten(1).sum(1)
    assert (areas <= torch.pi * 16**2 + 2 * 16).all()
    assert areas.max() >= torch.pi * 16**2 - 2 * 16


def test_scratches_are_thin_and_sparse():
    masks = M.ScratchMask(count=(1, 1))(32, 256, 256, generator=seeded(9))
    assert _surviving_after_erosion(masks, 2) == 0.0  # no 5x5 block fits in a 1-3 px line
    assert M.hole_ratio(masks).max() < 0.05
    longest = max(m.nonzero().float().std(0).norm().item() for m in masks[:, 0] if m.any())
    assert longest > 40  # some scratch runs a long way across the image


def _is_connected(mask: torch.Tensor) -> bool:
    """True when the hole pixels of an H x W mask form one 8-connected component."""
    seed = torch.zeros_like(mask)
    seed.view(-1)[mask.flatten().nonzero()[0]] = 1
    for _ in range(mask.numel()):
        grown = F.max_pool2d(seed[None, None], 3, stride=1, padding=1)[0, 0] * mask
        if torch.equal(grown, seed):
            break
        seed = grown
    return torch.equal(seed, mask)


def test_scratches_stay_connected_lines_at_small_sizes():
    # 0.004 x 32 px would be a 0.13 px line: the 1 px minimum keeps it unbroken.
    gen = M.ScratchMask(count=(1, 1), bend=0.0, length=(1.0, 1.0))
    masks = gen(16, 32, 32, generator=seeded(10))[:, 0]
    assert all(_is_connected(m) for m in masks)
    assert max(m.sum().item() for m in masks) >= 16


# ---------------------------------------------------------------- folder masks


def test_folder_polarity_white_and_black(tmp_path):
    array = np.zeros((8, 8), dtype=bool)
    array[:, :3] = True  # white on the left
    white = folder_of(tmp_path, array, hole="white")(1, 8, 8)[0, 0]
    black = folder_of(tmp_path, array, hole="black")(1, 8, 8)[0, 0]
    assert torch.equal(white, torch.from_numpy(array).float())
    assert torch.equal(black, 1 - white)


def test_folder_resize_is_nearest_and_keeps_the_pattern(tmp_path):
    array = np.zeros((4, 4), dtype=bool)
    array[0, 1] = True
    array[2:, 2:] = True
    gen = folder_of(tmp_path, array)
    big = gen(1, 8, 8)[0, 0]
    expected = torch.from_numpy(array).float().repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert torch.equal(big, expected)
    odd = gen(1, 10, 6)[0, 0]
    assert_binary(odd[None, None], 1, 10, 6)
    assert odd[0:2, 1].eq(1).all() and odd[5:, 3:].eq(1).all() and odd[5:, :3].eq(0).all()


def test_folder_reads_recursively_once_and_caches(mask_dir, monkeypatch):
    gen = M.FolderMask(mask_dir)
    assert len(gen) == 6  # png/bmp/webp in the root and the subfolder, not notes.txt

    def fail(*args):
        raise AssertionError("file read again")

    monkeypatch.setattr(folder_module, "_read_mask", fail)
    assert_binary(gen(3, 16, 16, generator=seeded(0)), 3, 16, 16)
    assert_binary(gen(3, 20, 12, generator=seeded(0)), 3, 20, 12)


def _dihedral(mask: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rotations/reflections of a square mask."""
    turns = [torch.rot90(mask, k, (-2, -1)) for k in range(4)]
    return turns + [t.flip(-1) for t in turns]


@pytest.mark.parametrize(
    ("flip", "rotate", "allowed"),
    [(False, True, range(4)), (True, False, (0, 2, 4, 6)), (True, True, range(8))],
)
def test_folder_flips_and_rotations_are_exact(tmp_path, flip, rotate, allowed):
    array = np.zeros((12, 12), dtype=bool)
    array[1:3, 2:9] = True
    array[3:8, 2:4] = True  # an asymmetric "L"
    base = torch.from_numpy(array).float()
    variants = _dihedral(base)
    masks = folder_of(tmp_path, array, flip=flip, rotate=rotate)(64, 12, 12, generator=seeded(0))
    seen = set()
    for mask in masks[:, 0]:
        matches = [i for i, v in enumerate(variants) if torch.equal(mask, v)]
        assert len(matches) == 1 and matches[0] in allowed
        seen.add(matches[0])
    assert seen == set(allowed)


def test_folder_quarter_turns_keep_shapes_on_non_square_images(tmp_path):
    array = np.zeros((16, 24), dtype=bool)
    array[7:9, 9:15] = True  # a 2 x 6 bar around the centre
    masks = folder_of(tmp_path, array, rotate=True)(32, 16, 24, generator=seeded(3))
    bars = {tuple((m.nonzero().amax(0) - m.nonzero().amin(0) + 1).tolist()) for m in masks[:, 0]}
    assert bars == {(2, 6), (6, 2)}
    assert (masks.flatten(1).sum(1) == 12).all()


def test_folder_small_angles_rotate_a_little(tmp_path):
    array = np.zeros((32, 32), dtype=bool)
    array[6:26, 12:20] = True
    plain = torch.from_numpy(array).float()
    masks = folder_of(tmp_path, array, max_angle=10.0)(16, 32, 32, generator=seeded(1))
    assert_binary(masks, 16, 32, 32)
    overlap = (masks[:, 0] * plain).flatten(1).sum(1) / plain.sum()
    assert (overlap > 0.7).all()
    assert (overlap < 1).any()


def test_folder_dilation_only_grows_holes(tmp_path):
    array = np.zeros((24, 24), dtype=bool)
    array[8:12, 10:14] = True
    plain = folder_of(tmp_path, array)(8, 24, 24)
    fixed = folder_of(tmp_path, array, dilate=(2, 2))(8, 24, 24)
    assert torch.equal(fixed, F.max_pool2d(plain, 5, stride=1, padding=2))
    ranged = folder_of(tmp_path, array, dilate=(0, 2))(32, 24, 24, generator=seeded(2))
    assert (ranged >= plain[:1]).all()
    assert set(ranged.flatten(1).sum(1).tolist()) == {16.0, 36.0, 64.0}


def test_folder_errors_are_one_line_data_errors(tmp_path):
    for bad_root in (tmp_path / "missing", _make_empty(tmp_path / "empty")):
        with pytest.raises(DataError) as info:
            M.FolderMask(bad_root)
        assert str(bad_root) in str(info.value) and "\n" not in str(info.value)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "bad.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match="bad.png") as info:
        M.FolderMask(tmp_path / "broken")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        M.FolderMask(tmp_path / "broken", hole="grey")


def _make_empty(path: Path) -> Path:
    """An existing folder with no mask images in it."""
    path.mkdir()
    (path / "readme.txt").write_text("no masks here")
    return path


# ---------------------------------------------------------------- mixture


def test_mixture_zero_weight_member_is_never_used():
    centre = M.CenterBoxMask(0.5)
    mixture = M.MixtureMask([centre, M.CenterBoxMask(1.0)], [1.0, 0.0])
    assert torch.equal(mixture(32, H, W, generator=seeded(0)), centre(32, H, W))


def test_mixture_follows_weights_roughly_and_accepts_mappings():
    members = {"half": M.CenterBoxMask(0.5), "full": M.CenterBoxMask(1.0)}
    mixture = M.MixtureMask(members, {"half": 0.2, "full": 0.8})
    masks = mixture(2000, 8, 8, generator=seeded(1))
    share_full = (M.hole_ratio(masks) == 1).float().mean().item()
    assert abs(share_full - 0.8) < 0.04
    with pytest.raises(ConfigError):
        M.MixtureMask(members, {"half": 1.0})
    with pytest.raises(ConfigError):
        M.MixtureMask(list(members.values()), [1.0, -1.0])


# ---------------------------------------------------------------- hydra configs

CONFIGS = {
    "center": M.CenterBoxMask,
    "boxes": M.RandomBoxMask,
    "freeform": M.FreeFormMask,
    "irregular_thin": M.FreeFormMask,
    "irregular_medium": M.FreeFormMask,
    "irregular_thick": M.FreeFormMask,
    "scratches": M.ScratchMask,
    "folder": M.FolderMask,
    "mixture": M.MixtureMask,
}
BOUNDS = {"min_ratio", "max_ratio", "max_tries"}


def _visible_parameters(cls: type) -> set[str]:
    """Constructor parameters a config must show."""
    params = inspect.signature(cls.__init__).parameters.values()
    names = {p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD}
    return (names - {"self"}) | BOUNDS


@pytest.mark.parametrize("name", CONFIGS)
def test_config_instantiates_and_shows_every_parameter(name, mask_dir):
    overrides = [f"+mask={name}"] + ([f"mask.root={mask_dir}"] if name == "folder" else [])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(overrides=overrides)
    assert set(cfg.mask) - {"_target_"} == _visible_parameters(CONFIGS[name])
    gen = instantiate(cfg.mask)
    assert type(gen) is CONFIGS[name]
    assert_binary(gen(2, 32, 32, generator=seeded(0)), 2, 32, 32)


def test_center_config_is_the_context_encoder_setting():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(overrides=["+mask=center"])
    gen = instantiate(cfg.mask)
    assert (gen.size, gen.inset) == (0.5, 4)

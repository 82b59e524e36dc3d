"""The classical prefill: known pixels kept, the equations' exact solutions reproduced, agreement
with a dense linear solve, odd sizes, grey and colour, full and empty masks, mixed precision,
and residual generators that score exactly the prefill before training."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inpaintlab.data.masks import FreeFormMask
from inpaintlab.errors import ConfigError
from inpaintlab.evaluation.baselines import ClassicalInpainter
from inpaintlab.metrics.image import psnr_per_image
from inpaintlab.networks import prefill
from inpaintlab.networks.prefill import Prefill, blended_fill, equation_fill, hole_depth, mean_fill
from inpaintlab.ops.compositing import composite
from tests.helpers import fit, smooth_images
from tests.tiny_checkpoints import CE_SIZE, tiny_model

EQUATIONS = ("harmonic", "biharmonic")
FILLS = (*EQUATIONS, "blended")  # the kinds that solve for the holes
KINDS = ("mean", *FILLS)


def random_batch(channels: int, height: int, width: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(2, channels, height, width, generator=g)
    mask = (torch.rand(2, 1, height, width, generator=g) < 0.4).float()
    mask[..., height // 4 : height // 2, width // 4 : 3 * width // 4] = 1
    return image, mask


def central_hole(height: int, width: int, margin: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, height, width)
    mask[..., margin:-margin, margin:-margin] = 1
    return mask


def dense_solution(image: np.ndarray, hole: np.ndarray, biharmonic: bool) -> np.ndarray:
    """The slow, obvious reference: one sparse-free dense linear solve of the discrete
    (bi)harmonic equation on the hole pixels, reflecting at the borders (H x W, one channel)."""
    height, width = image.shape
    n = height * width

    def reflect(i: int, size: int) -> int:
        return -i if i < 0 else 2 * (size - 1) - i if i >= size else i

    laplacian = np.zeros((n, n))
    for y in range(height):
        for x in range(width):
            row = y * width + x
            laplacian[row, row] -= 4
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                laplacian[row, reflect(y + dy, height) * width + reflect(x + dx, width)] += 1
    operator = laplacian @ laplacian if biharmonic else laplacian
    unknown = hole.ravel()
    values = image.ravel().astype(np.float64)
    rhs = -operator[np.ix_(unknown, ~unknown)] @ values[~unknown]
    solution = values.copy()
    solution[unknown] = np.linalg.solve(operator[np.ix_(unknown, unknown)], rhs)
    return solution.reshape(height, width)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("channels", "height", "width"), [(3, 37, 53), (1, 32, 32), (3, 5, 7)])
def test_known_pixels_are_kept_bit_for_bit_at_any_size(kind, channels, height, width):
    image, mask = random_batch(channels, height, width)
    filled = Prefill(kind)(image, mask)
    assert filled.shape == image.shape
    known = ~mask.bool().expand_as(image)
    assert torch.equal(filled[known], image[known])
    assert torch.isfinite(filled).all()
    low = image.masked_fill(~known, 2).amin((2, 3), keepdim=True)
    high = image.masked_fill(~known, -1).amax((2, 3), keepdim=True)
    assert (filled >= low).all() and (filled <= high).all()


def linear_ramp(height: int, width: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(float(height)), torch.arange(float(width)), indexing="ij")
    return (0.1 + 0.01 * xs + 0.005 * ys).expand(1, 3, -1, -1)


def test_the_harmonic_fill_reproduces_a_linear_ramp_across_a_hole():
    ramp = linear_ramp(40, 48)
    filled = equation_fill(ramp, central_hole(40, 48, margin=6), "harmonic")
    assert (filled - ramp).abs().max() < 1e-3


def test_the_biharmonic_fill_is_close_to_a_linear_ramp_across_a_hole():
    ramp = linear_ramp(40, 48)
    filled = equation_fill(ramp, central_hole(40, 48, margin=6), "biharmonic")
    mean = mean_fill(ramp, central_hole(40, 48, margin=6))
    assert (filled - ramp).abs().max() < 0.04
    assert (filled - ramp).abs().mean() < (mean - ramp).abs().mean() / 5


def slow_hole_depth(hole: np.ndarray, limit: int) -> np.ndarray:
    """The reference: each hole pixel's chessboard distance max(|dy|, |dx|) to the nearest
    known pixel, capped at `limit` (0 at known pixels), one pixel at a time."""
    known = np.argwhere(~hole)
    depth = np.zeros(hole.shape)
    for y, x in np.argwhere(hole):
        nearest = np.abs(known - (y, x)).max(1).min() if len(known) else limit
        depth[y, x] = min(nearest, limit)
    return depth


@pytest.mark.parametrize(("height", "width"), [(1, 5), (2, 3), (23, 29), (67, 71), (128, 33)])
def test_the_laplacian_reflects_at_the_borders_at_every_size(height, width):
    u = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(height))
    padded = np.pad(
        u.numpy(),
        ((0, 0), (0, 0), (1, 1), (1, 1)),
        mode="reflect" if min(height, width) > 1 else "edge",
    )
    neighbours = padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1] + padded[..., 1:-1, :-2]
    expected = neighbours + padded[..., 1:-1, 2:] - 4 * u.numpy()
    assert np.array_equal(prefill._laplacian(u).numpy(), expected)  # the same sums, bit for bit


def test_hole_depth_is_the_chessboard_distance_to_the_nearest_known_pixel():
    _, mask = random_batch(1, 23, 29, seed=4)
    mask[..., 2:20, 3:18] = 1
    for b in range(2):
        hole = mask[b, 0].numpy() > 0.5
        expected = slow_hole_depth(hole, limit=6)
        assert np.array_equal(hole_depth(mask, 6)[b, 0].numpy(), expected)


def test_the_blend_moves_from_the_plate_at_the_border_to_half_membrane_inside():
    image, mask = smooth_image(30, 34).expand(1, 3, -1, -1), central_hole(30, 34, margin=4)
    plate = equation_fill(image, mask, "biharmonic")
    membrane = equation_fill(image, mask, "harmonic")
    share = torch.from_numpy(slow_hole_depth(mask[0, 0].numpy() > 0.5, 6)).float() / 12
    assert torch.allclose(blended_fill(image, mask), plate + share * (membrane - plate), atol=1e-6)
    ramp = linear_ramp(40, 48)
    assert (blended_fill(ramp, central_hole(40, 48, margin=6)) - ramp).abs().max() < 0.04


def smooth_image(height: int, width: int) -> torch.Tensor:
    coarse = torch.rand(1, 1, 5, 6, generator=torch.Generator().manual_seed(0))
    return F.interpolate(coarse, size=(height, width), mode="bicubic").clamp(0, 1)


@pytest.mark.parametrize(
    ("kind", "holes", "closer_than_mean", "max_error"),
    [
        # the harmonic fill is solved (a V-cycle)
        ("harmonic", "box", 20, 0.005),
        ("harmonic", "scattered", 20, 0.005),
        # the biharmonic fill's 20 CG steps converge small holes; a 10 x 14 box stays near
        # the first fill in the middle
        ("biharmonic", "box", 4, 0.05),
        ("biharmonic", "scattered", 20, 0.005),
    ],
)
def test_the_fill_agrees_with_a_dense_linear_solve(kind, holes, closer_than_mean, max_error):
    image = smooth_image(20, 24)
    mask = central_hole(20, 24, margin=5) if holes == "box" else random_batch(1, 20, 24, 3)[1][:1]
    hole = mask[0, 0].numpy() > 0.5
    reference = dense_solution(image[0, 0].numpy(), hole, kind == "biharmonic")

    def mean_error(filled: torch.Tensor) -> float:
        return np.abs(filled[0, 0].double().numpy() - reference)[hole].mean()

    error = mean_error(equation_fill(image, mask, kind))
    assert error < mean_error(mean_fill(image, mask)) / closer_than_mean
    assert error < max_error


def test_more_conjugate_gradient_steps_approach_the_exact_biharmonic_solution(monkeypatch):
    image = smooth_image(20, 24)
    mask = central_hole(20, 24, margin=5)
    hole = mask[0, 0].numpy() > 0.5
    reference = dense_solution(image[0, 0].numpy(), hole, biharmonic=True)
    errors = []
    for iterations in (0, 20, 200):
        solver = prefill.SOLVERS["biharmonic"]._replace(cg_iterations=iterations)
        monkeypatch.setitem(prefill.SOLVERS, "biharmonic", solver)
        filled = equation_fill(image, mask, "biharmonic")
        errors.append(np.abs(filled[0, 0].double().numpy() - reference)[hole].mean())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


def test_mean_fill_uses_each_images_mean_known_colour():
    image = torch.stack([torch.full((3, 4, 4), 0.2), torch.full((3, 4, 4), 0.7)])
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1
    image[:, :, :2] = 5.0  # hole pixels must not count
    filled = mean_fill(image, mask)
    assert torch.allclose(filled[0, :, :2], torch.tensor(0.2))
    assert torch.allclose(filled[1, :, :2], torch.tensor(0.7))


@pytest.mark.parametrize("kind", KINDS)
def test_empty_and_full_masks(kind):
    image = torch.rand(2, 3, 16, 16)
    empty, full = torch.zeros(2, 1, 16, 16), torch.ones(2, 1, 16, 16)
    assert torch.equal(Prefill(kind)(image, empty), image)
    assert torch.equal(Prefill(kind)(image, full), torch.full_like(image, 0.5))


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_precision_changes_nothing(kind):
    image, mask = random_batch(3, 48, 40)
    expected = Prefill(kind)(image, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        filled = Prefill(kind)(image, mask)
    assert filled.dtype == torch.float32
    assert torch.equal(filled, expected)


def test_unknown_kinds_and_a_residual_without_a_fill_are_config_errors():
    with pytest.raises(ConfigError, match="prefill='nope'"):
        Prefill("nope")
    with pytest.raises(ConfigError, match="model.residual=true"):
        tiny_model("pconv", residual=True)


@pytest.mark.parametrize("kind", ["pconv", "edgeconnect", "ce_random_region"])
@pytest.mark.parametrize("prefill", FILLS)
def test_an_untrained_residual_generator_scores_exactly_its_prefill(kind, prefill):
    model = tiny_model(kind, prefill=prefill, residual=True)
    image, mask = random_batch(3, 32, 32)
    with torch.no_grad():
        output = model(image, mask)
    expected = composite(Prefill(prefill)(image, mask), image, mask)
    assert torch.allclose(output, expected, atol=1e-6)


def test_the_multigrid_fills_are_baselines_of_their_own():
    image, mask = random_batch(3, 32, 32)
    harmonic = ClassicalInpainter("harmonic")(image, mask)
    assert torch.equal(harmonic, equation_fill(image, mask, "harmonic"))
    biharmonic = ClassicalInpainter("biharmonic_multigrid")(image, mask)
    assert torch.equal(biharmonic, equation_fill(image, mask, "biharmonic"))
    assert torch.equal(ClassicalInpainter("blended")(image, mask), blended_fill(image, mask))


@pytest.mark.parametrize("kind", ["pconv", "edgeconnect", "ce_random_region"])
def test_a_residual_generator_keeps_known_pixels_and_learns_to_correct_its_fill(kind):
    """Its raw output equals the input outside the holes (no loss term there holds the
    zero-initialised correction at zero), and on one batch it soon beats its prefill."""
    size = CE_SIZE if kind.startswith("ce_") else 64
    image = F.interpolate(smooth_images(8), size=size, mode="bilinear").clamp(0, 1)
    image = (image + 0.1 * torch.sin(torch.arange(float(size)) * 0.8)).clamp(0, 1)
    mask = FreeFormMask()(8, size, size, generator=torch.Generator().manual_seed(0))
    model = tiny_model(kind, prefill="biharmonic", residual=True)
    generator = model.inpaint_generator if kind == "edgeconnect" else model.generator
    model.train()
    fit(model, {"image": image, "mask": mask}, steps=100)
    model.eval()
    with torch.no_grad():
        raw = model.inpaint(image, mask)
        after = psnr_per_image(model(image, mask), image).mean()
    known = ~mask.bool().expand_as(image)
    assert torch.allclose(raw[known], image[known], atol=1e-6)
    before = psnr_per_image(composite(Prefill("biharmonic")(image, mask), image, mask), image)
    assert after > before.mean() + 3
    assert generator.residual

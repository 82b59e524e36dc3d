"""The EdgeConnect LightningModule: stages freeze the right pairs, stage 3 loads stage 1,
both stages learn, inference works at any size."""

import pytest
import torch

from inpaintlab import Inpainter
from inpaintlab.data.edges import greyscale
from inpaintlab.errors import ConfigError
from inpaintlab.models.edgeconnect import EdgeConnectModule
from tests.helpers import SIZE, fit, smooth_images
from tests.tiny_checkpoints import ADAM, edge_detector, edgeconnect_loss, network


def make_module(stage="edge", **kwargs) -> EdgeConnectModule:
    small = {"residual_blocks": 1, "base_channels": 16}
    return EdgeConnectModule(
        edge_generator=network("edgeconnect.EdgeGenerator", **small),
        inpaint_generator=network("edgeconnect.InpaintGenerator", **small),
        edge_discriminator=network(
            "discriminators.PatchDiscriminator", channels=2, base_channels=8
        ),
        inpaint_discriminator=network("discriminators.PatchDiscriminator", base_channels=8),
        edges=edge_detector(),
        optimizer={**ADAM, "betas": [0.0, 0.9]},
        loss=edgeconnect_loss(),
        stage=stage,
        **kwargs,
    )


def block_masks(n: int) -> torch.Tensor:
    mask = torch.zeros(n, 1, SIZE, SIZE)
    mask[..., 20:44, 16:40] = 1
    return mask


def batch(n: int = 2) -> dict:
    return {"image": smooth_images(n), "mask": block_masks(n)}


def snapshot(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


def changed_networks(before: dict, after: dict) -> set[str]:
    return {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.parametrize(
    ("stage", "trained"),
    [
        ("edge", {"edge_generator", "edge_discriminator"}),
        ("inpaint", {"inpaint_generator", "inpaint_discriminator"}),
        (
            "joint",
            {"edge_generator", "edge_discriminator", "inpaint_generator", "inpaint_discriminator"},
        ),
    ],
)
def test_a_stage_updates_exactly_its_pairs(stage, trained):
    module = make_module(stage)
    before = snapshot(module)
    fit(module, batch(), steps=1)
    assert changed_networks(before, module.state_dict()) == trained
    frozen = {"edge_generator", "edge_discriminator", "inpaint_generator", "inpaint_discriminator"}
    for name in frozen - trained:
        net = getattr(module, name)
        assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_edge_inpaint_stage_needs_and_loads_a_stage_one_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="edge_ckpt"):
        make_module("edge_inpaint")
    stage1 = make_module("edge")
    trainer = fit(stage1, batch(), steps=1)
    path = tmp_path / "edge.ckpt"
    trainer.save_checkpoint(path)
    stage3 = make_module("edge_inpaint", edge_ckpt=str(path))
    before = snapshot(stage3)
    fit(stage3, batch(), steps=1)
    for key, value in stage1.edge_generator.state_dict().items():
        assert torch.equal(value, stage3.edge_generator.state_dict()[key])
    assert {"inpaint_generator", "inpaint_discriminator"} <= changed_networks(
        before, stage3.state_dict()
    )


def test_edge_stage_loss_falls_when_overfitting():
    torch.manual_seed(0)
    module = make_module("edge")
    data = batch(4)
    edges = module.true_edges(data["image"])

    def edge_error() -> float:
        with torch.no_grad():
            predicted = module.edge_generator(greyscale(data["image"]), edges, data["mask"])
        return ((predicted - edges).abs() * data["mask"]).sum().item()

    start = edge_error()
    fit(module, data, steps=150)
    assert edge_error() < 0.5 * start


def test_inpaint_stage_hole_l1_falls_when_overfitting():
    torch.manual_seed(0)
    module = make_module("inpaint")
    data = batch(4)
    edges = module.true_edges(data["image"])

    def hole_l1() -> float:
        with torch.no_grad():
            out = module.inpaint_generator(data["image"], edges, data["mask"])
        return ((out - data["image"]).abs() * data["mask"]).sum().item() / data["mask"].sum().item()

    start = hole_l1()
    fit(module, data, steps=150)
    assert hole_l1() < 0.5 * start


def test_inference_runs_at_any_size_and_keeps_known_pixels():
    module = make_module("inpaint").eval()
    image = torch.rand(1, 3, 37, 50)
    mask = torch.zeros(1, 1, 37, 50)
    mask[..., 10:20, 12:30] = 1
    out = Inpainter(module, "edgeconnect", torch.device("cpu"))(image, mask)
    assert out.shape == image.shape
    known = ~mask.bool().expand_as(image)
    assert torch.equal(out[known], image[known])

"""Tiny untrained models of each kind, saved as checkpoints in the format train.py writes."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch

from inpaintlab.models.base import InpaintingModule
from inpaintlab.models.context_encoder import ContextEncoderModule
from inpaintlab.models.edgeconnect import EdgeConnectModule
from inpaintlab.models.partial_conv import PartialConvModule

ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}
ADVERSARIAL = {"_target_": "inpaintlab.losses.adversarial.AdversarialLoss"}
CE_SIZE = 32  # the Context Encoder's training size
KINDS = ("pconv", "edgeconnect", "ce_random_region", "ce_center")


def network(name: str, **kwargs) -> dict:
    return {"_target_": f"inpaintlab.networks.{name}", **kwargs}


def edge_detector() -> dict:
    """EdgeConnect's Canny settings (a new dict: tests change the ones a model keeps)."""
    return {"_target_": "inpaintlab.data.edges.EdgeDetector", "sigma": 1.0}


def edgeconnect_loss() -> dict:
    """EdgeConnect's loss weights, the paper's without the VGG terms (a new dict)."""
    return {
        "edge": {
            "_target_": "inpaintlab.losses.edgeconnect.EdgeConnectEdgeLoss",
            "feature_matching": 10.0,
            "adversarial_weight": 1.0,
            "adversarial": ADVERSARIAL,
        },
        "inpaint": {
            "_target_": "inpaintlab.losses.edgeconnect.EdgeConnectInpaintLoss",
            "l1": 1.0,
            "perceptual": 0.0,
            "style": 0.0,
            "vgg_weights": "none",
            "adversarial_weight": 0.1,
            "adversarial": ADVERSARIAL,
        },
    }


def patch_discriminator(channels: int) -> dict:
    return network("discriminators.PatchDiscriminator", channels=channels, base_channels=4)


def pconv(channels: int, **switches) -> PartialConvModule:
    return PartialConvModule(
        generator=network("pconv_unet.PConvUNet", channels=channels, depth=3, base_channels=8),
        discriminator=patch_discriminator(channels),
        optimizer=ADAM,
        loss={
            "_target_": "inpaintlab.losses.pconv.PartialConvLoss",
            "valid": 1.0,
            "hole": 6.0,
            "perceptual": 0.0,
            "style": 0.0,
            "tv": 0.1,
            "vgg_weights": "none",
            "adversarial_weight": 0.0,
            "adversarial": ADVERSARIAL,
        },
        **switches,
    )


def edgeconnect(channels: int, **switches) -> EdgeConnectModule:
    small = {"residual_blocks": 1, "base_channels": 8}
    return EdgeConnectModule(
        edge_generator=network("edgeconnect.EdgeGenerator", **small),
        inpaint_generator=network("edgeconnect.InpaintGenerator", channels=channels, **small),
        edge_discriminator=patch_discriminator(2),
        inpaint_discriminator=patch_discriminator(channels),
        edges=edge_detector(),
        optimizer=ADAM,
        loss=edgeconnect_loss(),
        stage="joint",
        **switches,
    )


def context_encoder(
    channels: int, setting: str, generator_options: dict | None = None, **switches
) -> ContextEncoderModule:
    """A tiny Context Encoder; `generator_options` go to its generator (mask_input, skips)."""
    return ContextEncoderModule(
        generator=network(
            "context_encoder.ContextEncoderGenerator",
            image_size=CE_SIZE,
            channels=channels,
            base_channels=8,
            bottleneck=16,
            **(generator_options or {}),
        ),
        discriminator=network(
            "discriminators.DCGANDiscriminator", channels=channels, base_channels=8
        ),
        optimizer=ADAM,
        loss={
            "_target_": "inpaintlab.losses.reconstruction.ContextEncoderLoss",
            "reconstruction_weight": 0.999,
            "adversarial_weight": 0.001,
            "overlap_weight": 10.0,
            "known_weight": 0.0,
            "adversarial": ADVERSARIAL,
        },
        setting=setting,
        **switches,
    )


def tiny_model(kind: str, channels: int = 3, **switches) -> InpaintingModule:
    """An untrained tiny model of `kind` (one of KINDS), seeded, in eval mode; `switches` are
    training switches (conf/model/switches/default.yaml)."""
    torch.manual_seed(0)
    if kind.startswith("ce_"):
        return context_encoder(channels, kind.removeprefix("ce_"), **switches).eval()
    return {"pconv": pconv, "edgeconnect": edgeconnect}[kind](channels, **switches).eval()


def save_checkpoint(model: InpaintingModule, path: Path) -> Path:
    """What Trainer.save_checkpoint stores of a model (weights, hparams, the model's own
    entry), without a Trainer."""
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": pl.__version__,
    }
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def save_tiny_checkpoints(folder: Path) -> dict[str, Path]:
    """An RGB checkpoint of every kind, keyed by kind, and a greyscale PConv ("pconv_grey")."""
    paths = {kind: save_checkpoint(tiny_model(kind), folder / f"{kind}.ckpt") for kind in KINDS}
    paths["pconv_grey"] = save_checkpoint(tiny_model("pconv", 1), folder / "pconv_grey.ckpt")
    return paths

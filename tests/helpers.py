"""Helpers shared by the model tests: learnable images, a Trainer over one fixed batch, mask
generators built from their yaml."""

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from inpaintlab.conf import CONFIG_DIR
from inpaintlab.data.masks import MaskGenerator

SIZE = 64
# Hydra overrides for tiny networks of each model, every GAN pair on (PConv with its optional
# discriminator, EdgeConnect's joint stage: four optimisers), no VGG
TINY_NETWORKS = {
    "context_encoder": [
        "model.generator.base_channels=8",
        "model.generator.bottleneck=16",
        "model.discriminator.base_channels=8",
    ],
    "pconv": [
        "model.generator.depth=3",
        "model.generator.base_channels=8",
        "model.discriminator.base_channels=8",
        "loss.perceptual=0",
        "loss.style=0",
        "loss.adversarial_weight=0.1",
    ],
    "edgeconnect": [
        "model.stage=joint",
        "model.edge_generator.residual_blocks=1",
        "model.edge_generator.base_channels=8",
        "model.inpaint_generator.residual_blocks=1",
        "model.inpaint_generator.base_channels=8",
        "model.edge_discriminator.base_channels=8",
        "model.inpaint_discriminator.base_channels=8",
        "loss.inpaint.perceptual=0",
        "loss.inpaint.style=0",
    ],
}
# ... with a mask each model trains on as it is
TINY_OVERRIDES = {
    "context_encoder": [*TINY_NETWORKS["context_encoder"], "mask=center"],
    "pconv": [*TINY_NETWORKS["pconv"], "mask=freeform"],
    "edgeconnect": [*TINY_NETWORKS["edgeconnect"], "mask=freeform"],
}


def smooth_images(n: int, seed: int = 0) -> torch.Tensor:
    """Low-frequency random colour images: learnable structure, not noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=SIZE, mode="bicubic").clamp(0, 1)


class FixedBatches(Dataset):
    def __init__(self, batch: dict, steps: int):
        self.batch, self.steps = batch, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.batch


def fit(module, batch, steps, **trainer_kwargs) -> pl.Trainer:
    """Train `module` for `steps` steps on the same batch; no logs, checkpoints or validation."""
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        accelerator="cpu",
        **trainer_kwargs,
    )
    trainer.fit(module, DataLoader(FixedBatches(batch, steps), batch_size=None))
    return trainer


def mask_from_config(name: str, **values) -> MaskGenerator:
    """The generator conf/mask/<name>.yaml builds, with `values` overriding its own."""
    overrides = [f"+mask={name}", *(f"mask.{k}={v}" for k, v in values.items())]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return instantiate(compose(overrides=overrides).mask)

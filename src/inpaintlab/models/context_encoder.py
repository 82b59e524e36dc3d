"""Context Encoder (Pathak et al., CVPR 2016) as a manually optimised GAN."""

from __future__ import annotations

from typing import Any

import hydra
import torch
from torch import Tensor

from inpaintlab.errors import ConfigError
from inpaintlab.losses.reconstruction import ContextEncoderLoss, check_setting
from inpaintlab.models.base import InpaintingModule, plain
from inpaintlab.networks.context_encoder import (
    center_patch_box,
    crop_center_patch,
    paste_center_patch,
)
from inpaintlab.ops.compositing import holes_outside


class ContextEncoderModule(InpaintingModule):
    """Encoder-decoder generator with an L2 + adversarial loss.

    `center`: the generator predicts the centre half of the image and the discriminator judges
    that patch; the L2 weights the known band of the patch (the overlap) `overlap_weight` times
    the hole. `random_region`: the generator predicts the whole image for arbitrary masks and the
    discriminator judges the whole prediction.
    """

    def __init__(
        self,
        generator: dict,
        discriminator: dict,
        optimizer: dict,
        loss: dict,
        setting: str = "center",
        generator_lr_scale: float = 10.0,
        **switches: Any,
    ) -> None:
        generator, discriminator, optimizer, loss = map(
            plain, (generator, discriminator, optimizer, loss)
        )
        check_setting(setting)
        super().__init__(optimizer, **switches)
        # the run config (all groups) is logged once by the training task, not these again
        self.save_hyperparameters(logger=False)
        self.setting = setting
        output = "center" if setting == "center" else "full"
        self.generator = hydra.utils.instantiate(
            generator, output=output, **self.generator_extensions
        )
        image_size = generator["image_size"]
        patch = image_size // 2 if setting == "center" else image_size
        self.discriminator = hydra.utils.instantiate(discriminator, input_size=patch)
        # built when fitting starts, like every variant's loss
        self.criterion: ContextEncoderLoss | None = None
        self.build_generator_average()

    @property
    def fixed_size(self) -> int:
        return self.generator.image_size

    @property
    def fillable_box(self) -> tuple[int, int, int] | None:
        return center_patch_box(self.fixed_size) if self.setting == "center" else None

    def create_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        scale = self.hparams.generator_lr_scale
        return {
            "generator": self.build_optimizer(self.generator.parameters(), lr_scale=scale),
            "discriminator": self.build_optimizer(self.discriminator.parameters()),
        }

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.criterion is None:
            self.criterion = self.build_loss(self.hparams.loss, setting=self.setting)

    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        self._check_holes(mask)
        pred = self.inference_network("generator")(image, mask).clamp(0, 1)
        if self.setting == "random_region":
            return pred
        return paste_center_patch(image, pred.to(image.dtype))

    def gan_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        image, mask = self.prepare_input(batch)
        if batch_idx == 0:
            self._check_holes(mask)
        pred = self.generator(image, mask)
        real, hole = self._targets(image, mask)
        # the discriminator trains only while its term counts
        discriminator = self.discriminator if self.criterion.adversarial_weight > 0 else None
        terms = self.criterion(pred, real, hole)
        self.adversarial_pair_step(self.criterion, discriminator, real, pred, terms)

    def _targets(self, image: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """What the generator must reproduce, and its hole mask."""
        if self.setting == "random_region":
            return image, mask
        return crop_center_patch(image), crop_center_patch(mask)

    def _check_holes(self, mask: Tensor) -> None:
        """In the centre setting every hole must lie inside the predicted centre patch."""
        if self.setting != "center" or torch.compiler.is_compiling():
            return  # an exported or compiled graph cannot raise; inference checks beforehand
        if holes_outside(mask, center_patch_box(mask.shape[-1])):
            raise ConfigError(
                "model.setting=center fills only the centre patch but the masks have holes "
                "outside it: use mask=center or model.setting=random_region"
            )

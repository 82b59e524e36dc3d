"""Partial Convolution U-Net (Liu et al., ECCV 2018), with an optional PatchGAN term."""

from __future__ import annotations

from typing import Any

import hydra
from torch import Tensor
from torch.optim import Optimizer

from inpaintlab.losses.pconv import PartialConvLoss
from inpaintlab.models.base import InpaintingModule, plain


class PartialConvModule(InpaintingModule):
    """The paper's loss (valid/hole L1, perceptual, style, total variation) on a PConv U-Net.

    With `loss.adversarial_weight > 0` a PatchGAN discriminator judges the raw output and the
    generator gets the weighted adversarial term on top; at 0 (the paper) no discriminator
    is built. `init_from` loads the networks' weights (not optimiser states) from a
    checkpoint when fitting starts: the second, fine-tuning stage of the paper. The loss (and
    its VGG) is built when fitting starts too, so evaluation and inference need no VGG weights.
    """

    def __init__(
        self,
        generator: dict,
        discriminator: dict,
        optimizer: dict,
        loss: dict,
        freeze_encoder_bn: bool = False,
        init_from: str | None = None,
        discriminator_lr_scale: float = 1.0,
        **switches: Any,
    ) -> None:
        generator, discriminator, optimizer, loss = map(
            plain, (generator, discriminator, optimizer, loss)
        )
        super().__init__(optimizer, **switches)
        self.save_hyperparameters(logger=False)
        self.generator = hydra.utils.instantiate(
            generator, freeze_encoder_bn=freeze_encoder_bn, **self.generator_extensions
        )
        # built when fitting starts: evaluation and inference never load the VGG weights
        self.criterion: PartialConvLoss | None = None
        self.discriminator = None
        if loss.get("adversarial_weight", 0) > 0:
            self.discriminator = hydra.utils.instantiate(discriminator)
        self.build_generator_average()

    @property
    def size_multiple(self) -> int:
        return 2**self.generator.depth

    def create_optimizers(self) -> dict[str, Optimizer]:
        optimizers = {"generator": self.build_optimizer(self.generator.parameters())}
        if self.discriminator is not None:
            scale = self.hparams.discriminator_lr_scale
            optimizers["discriminator"] = self.build_optimizer(
                self.discriminator.parameters(), scale
            )
        return optimizers

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.criterion is None:
            self.criterion = self.build_loss(self.hparams.loss)
        if self.fitting_from_scratch(stage) and self.hparams.init_from:
            self.load_network_weights(self.hparams.init_from, ["generator"], ["discriminator"])

    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        return self.inference_network("generator")(image, mask).clamp(0, 1)

    def gan_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        image, mask = self.prepare_input(batch)
        output = self.generator(image, mask)
        terms = self.criterion(output, image, mask)
        self.adversarial_pair_step(self.criterion, self.discriminator, image, output, terms)

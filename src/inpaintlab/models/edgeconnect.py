"""EdgeConnect (Nazeri et al., ICCVW 2019): an edge GAN, then an edge-guided inpainting GAN."""

from __future__ import annotations

from typing import Any

import hydra
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from inpaintlab.data.edges import greyscale, mask_edges
from inpaintlab.errors import ConfigError
from inpaintlab.losses.edgeconnect import EdgeConnectEdgeLoss, EdgeConnectInpaintLoss
from inpaintlab.metrics.edges import EdgeAccuracy
from inpaintlab.models.base import InpaintingModule, plain
from inpaintlab.networks.edgeconnect import SIDE_MULTIPLE, composite_edges

ROLES = ("generator", "discriminator")
# which (generator, discriminator) pairs each stage trains (Nazeri et al.'s four modes)
STAGE_PAIRS = {
    "edge": ("edge",),
    "inpaint": ("inpaint",),
    "edge_inpaint": ("inpaint",),
    "joint": ("edge", "inpaint"),
}


class EdgeConnectModule(InpaintingModule):
    """Two GAN pairs: G1/D1 complete the edge map of the holes, G2/D2 fill colour along edges.

    Stages: `edge` trains G1 alone; `inpaint` trains G2 on ground-truth edges; `edge_inpaint`
    trains G2 on the edges of a frozen G1 loaded from `edge_ckpt` (the released setting);
    `joint` trains both, G2 on G1's edges (its updates do not reach G1, unlike the released
    code; the paper found no clear gain in this mode). Pairs a stage does not train are frozen
    and kept in eval mode. Inference always runs both generators at the image's own size
    (sides a multiple of `size_multiple`: the Inpainter pads by reflection and crops back).
    """

    size_multiple = SIDE_MULTIPLE

    def __init__(
        self,
        edge_generator: dict,
        inpaint_generator: dict,
        edge_discriminator: dict,
        inpaint_discriminator: dict,
        edges: dict,
        optimizer: dict,
        loss: dict,
        stage: str = "edge",
        edge_ckpt: str | None = None,
        discriminator_lr_scale: float = 0.1,
        **switches: Any,
    ) -> None:
        if stage not in STAGE_PAIRS:
            raise ConfigError(f"model.stage={stage!r} is not one of {', '.join(STAGE_PAIRS)}")
        if stage == "edge_inpaint" and not edge_ckpt:
            raise ConfigError(
                "model.stage=edge_inpaint needs model.edge_ckpt=<a stage-1 (edge) checkpoint>"
            )
        networks = (edge_generator, inpaint_generator, edge_discriminator, inpaint_discriminator)
        edge_generator, inpaint_generator, edge_discriminator, inpaint_discriminator = map(
            plain, networks
        )
        edges, optimizer, loss = map(plain, (edges, optimizer, loss))
        super().__init__(optimizer, **switches)
        self.save_hyperparameters(logger=False)
        self.stage = stage
        self.edge_generator = hydra.utils.instantiate(edge_generator)
        self.edge_discriminator = hydra.utils.instantiate(edge_discriminator)
        self.inpaint_generator = hydra.utils.instantiate(
            inpaint_generator, **self.generator_extensions
        )
        self.inpaint_discriminator = hydra.utils.instantiate(inpaint_discriminator)
        self.edge_detector = hydra.utils.instantiate(edges)
        # one loss per generator, built when fitting starts: evaluation and inference never
        # load the VGG weights
        self.edge_loss: EdgeConnectEdgeLoss | None = None
        self.inpaint_loss: EdgeConnectInpaintLoss | None = None
        self.val_edges = EdgeAccuracy()
        self._canny_rng: torch.Generator | None = None
        for pair in ("edge", "inpaint"):
            if pair not in STAGE_PAIRS[stage]:
                self._pair(pair).requires_grad_(False).eval()
        self.build_generator_average()

    @property
    def network_names(self) -> tuple[str, ...]:
        return tuple(f"{pair}_{role}" for pair in ("edge", "inpaint") for role in ROLES)

    @property
    def trained_generator_names(self) -> tuple[str, ...]:
        return tuple(f"{pair}_generator" for pair in STAGE_PAIRS[self.stage])

    @property
    def image_channels(self) -> int:
        return self.hparams["inpaint_generator"].get("channels", 3)

    def _pair(self, name: str) -> nn.ModuleList:
        return nn.ModuleList([getattr(self, f"{name}_{role}") for role in ROLES])

    def train(self, mode: bool = True) -> EdgeConnectModule:
        """Train/eval mode; the pairs this stage does not train stay in eval mode."""
        super().train(mode)
        for pair in ("edge", "inpaint"):
            if pair not in STAGE_PAIRS[self.stage]:
                self._pair(pair).eval()
        return self

    def create_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        scale = self.hparams.discriminator_lr_scale
        optimizers = {}
        for pair in STAGE_PAIRS[self.stage]:
            generator, discriminator = self._pair(pair)
            optimizers[f"{pair}_generator"] = self.build_optimizer(generator.parameters())
            optimizers[f"{pair}_discriminator"] = self.build_optimizer(
                discriminator.parameters(), scale
            )
        return optimizers

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.edge_loss is None:
            # the inpainting loss (and its VGG) only for a stage that trains its generator
            self.edge_loss = self.build_loss(self.hparams.loss["edge"])
            if "inpaint" in STAGE_PAIRS[self.stage]:
                self.inpaint_loss = self.build_loss(self.hparams.loss["inpaint"])
        if self.fitting_from_scratch(stage) and self.hparams.edge_ckpt:
            self.load_network_weights(
                self.hparams.edge_ckpt, ["edge_generator"], ["edge_discriminator"]
            )

    def true_edges(self, image: Tensor) -> Tensor:
        """Canny edges of the whole image (the training target and G2's guide)."""
        if self._canny_rng is None or self._canny_rng.device != image.device:
            self._canny_rng = torch.Generator(image.device).manual_seed(self.global_rank)
        return self.edge_detector(image, generator=self._canny_rng)

    def known_edges(self, image: Tensor, mask: Tensor) -> Tensor:
        """Edges of the known pixels only: hole pixels are blanked before Canny, and edges in
        the holes and on their 1-px border (the blanking's artefact) are removed."""
        edges = self.edge_detector(image * (1 - mask))
        return mask_edges(edges, F.max_pool2d(mask, 3, stride=1, padding=1))

    def complete_edges(self, image: Tensor, mask: Tensor, edges: Tensor) -> Tensor:
        """G1's edges inside the holes, `edges` outside."""
        predicted = self.inference_network("edge_generator")(greyscale(image), edges, mask)
        return composite_edges(predicted, edges, mask)

    def inpaint(self, image: Tensor, mask: Tensor) -> Tensor:
        edges = self.complete_edges(image, mask, self.known_edges(image, mask))
        generator = self.inference_network("inpaint_generator")
        return generator(image, edges, mask).clamp(0, 1)

    def gan_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        image, mask = self.prepare_input(batch)
        edges = self.true_edges(image)
        pairs = STAGE_PAIRS[self.stage]
        guide = edges
        if "edge" in pairs:
            predicted = self._edge_step(image, mask, edges)
            guide = composite_edges(predicted.detach(), edges, mask)
        elif self.stage == "edge_inpaint":
            with torch.no_grad():
                guide = self.complete_edges(image, mask, edges)
        if "inpaint" in pairs:
            self._inpaint_step(image, mask, guide)

    def _edge_step(self, image, mask, edges) -> Tensor:
        """One D1 and one G1 update; returns G1's edges."""
        optimizers = self.named_optimizers()
        grey = greyscale(image)
        predicted = self.edge_generator(grey, edges, mask)
        real, fake = torch.cat([grey, edges], 1), torch.cat([grey, predicted], 1)
        self.discriminator_step(
            self.edge_discriminator,
            self.edge_loss,
            real,
            fake,
            optimizers["edge_discriminator"],
            "edge_d_loss",
        )
        fake_logits, fake_features = self.edge_discriminator.forward_with_features(fake)
        with torch.no_grad():  # feature matching's target: detached, so no graph to build
            _, real_features = self.edge_discriminator.forward_with_features(real)
        terms = self.edge_loss.with_adversarial(
            self.edge_loss(fake_features, real_features), fake_logits
        )
        self.generator_step(optimizers["edge_generator"], terms, "edge_g_loss", prefix="edge_")
        return predicted

    def _inpaint_step(self, image, mask, edges) -> None:
        """One D2 and one G2 update on the given guide edges."""
        output = self.inpaint_generator(image, edges, mask)
        terms = self.inpaint_loss(output, image, mask)
        self.adversarial_pair_step(
            self.inpaint_loss, self.inpaint_discriminator, image, output, terms, pair="inpaint_"
        )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        image, mask = self.prepare_input(batch)
        predicted = self.complete_edges(image, mask, self.known_edges(image, mask))
        self.val_edges.update(predicted, self.edge_detector(image), region=mask)

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        values = self.val_edges.compute()
        self.val_edges.reset()
        self.log_dict({f"val/{k}": v for k, v in values.items()})

    def sample_extras(self, image: Tensor, mask: Tensor) -> list[Tensor]:
        """Known edges and completed edges, shown after the four standard tiles."""
        known = self.known_edges(image, mask)
        return [known, self.complete_edges(image, mask, known)]

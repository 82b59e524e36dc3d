"""GAN losses on discriminator logits: non-saturating, hinge and least squares."""

import torch
import torch.nn.functional as F
from torch import Tensor

from inpaintlab.errors import ConfigError

KINDS = ("nsgan", "hinge", "lsgan")


class AdversarialLoss:
    """GAN loss of one `kind`: "nsgan" (non-saturating, BCE on logits), "hinge" or "lsgan".

    Every term is a mean over its logits. `discriminator_loss` is the mean of the real and
    fake terms (EdgeConnect's convention; the released Context Encoder code summed them, a
    factor 2 that Adam's scale invariance makes immaterial).

    Example:
        >>> import torch
        >>> loss = AdversarialLoss("hinge")
        >>> loss.generator_loss(torch.tensor([1.0, 3.0]))
        tensor(-2.)
    """

    def __init__(self, kind: str = "nsgan") -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown adversarial loss {kind!r}; use one of {', '.join(KINDS)}")
        self.kind = kind

    def __repr__(self) -> str:
        return f"AdversarialLoss(kind={self.kind!r})"

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Mean of the loss pushing real logits up and the loss pushing fake logits down."""
        return 0.5 * (self._real_term(real_logits) + self._fake_term(fake_logits))

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        """Loss rewarding the generator for fake logits the discriminator calls real."""
        if self.kind == "hinge":
            return -fake_logits.mean()
        return self._real_term(fake_logits)

    def _real_term(self, logits: Tensor) -> Tensor:
        """Loss for logits whose target is "real"."""
        if self.kind == "nsgan":
            return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        if self.kind == "hinge":
            return F.relu(1 - logits).mean()
        return (logits - 1).square().mean()

    def _fake_term(self, logits: Tensor) -> Tensor:
        """Loss for logits whose target is "fake"."""
        if self.kind == "nsgan":
            return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
        if self.kind == "hinge":
            return F.relu(1 + logits).mean()
        return logits.square().mean()

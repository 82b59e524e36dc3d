"""What every variant's loss offers its LightningModule: one protocol for the three papers."""

from __future__ import annotations

from torch import Tensor, nn

from inpaintlab.losses.adversarial import AdversarialLoss


class GeneratorLoss(nn.Module):
    """A generator's loss: `forward(...)` returns {term name: unweighted value} for the terms
    it weights, plus their weighted sum under "total"; `with_adversarial` adds the GAN term
    (the `adversarial` loss of the discriminator's logits on the fake, times
    `adversarial_weight`), and `discriminator_loss` is the loss of the discriminator that
    judges this generator. Each variant's loss config (conf/loss/) builds one subclass with
    `instantiate` when fitting starts, so evaluation and inference never build a VGG.

    Example:
        >>> import torch
        >>> loss = GeneratorLoss(AdversarialLoss("hinge"), adversarial_weight=0.5)
        >>> loss.with_adversarial({"total": torch.tensor(1.0)}, torch.tensor([2.0]))
        {'total': tensor(0.), 'adversarial': tensor(-2.)}
    """

    def __init__(
        self, adversarial: AdversarialLoss | None = None, adversarial_weight: float = 0.0
    ) -> None:
        super().__init__()
        self.adversarial = adversarial or AdversarialLoss()
        self.adversarial_weight = adversarial_weight

    def with_adversarial(self, terms: dict[str, Tensor], fake_logits: Tensor) -> dict[str, Tensor]:
        """`terms` with the generator's adversarial term added, and to the total, weighted."""
        adversarial = self.adversarial.generator_loss(fake_logits)
        total = terms["total"] + self.adversarial_weight * adversarial
        return {**terms, "total": total, "adversarial": adversarial}

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """The loss of the discriminator that judges this generator's output."""
        return self.adversarial.discriminator_loss(real_logits, fake_logits)

    def extra_repr(self) -> str:
        return f"adversarial={self.adversarial}, adversarial_weight={self.adversarial_weight}"


def weighted_total(terms: dict[str, Tensor], weights: dict[str, float], like: Tensor) -> Tensor:
    """The sum of weights[name] * value over `terms` (0 of `like`'s dtype and device if none)."""
    return sum((weights[name] * value for name, value in terms.items()), like.new_zeros(()))

"""DCGAN weight initialisation (Radford et al. 2016), as used by Pathak et al.'s released code."""

from torch import nn

_LINEAR_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def init_dcgan_weights(module: nn.Module, std: float = 0.02) -> None:
    """Initialise every layer inside `module`: weights N(0, std), norm scales N(1, std), biases 0.

    Convolutions, transposed convolutions and linear layers get N(0, std) weights; BatchNorm
    layers get N(1, std) scales. All their biases are zeroed. Other layers are left as they are.
    """
    for layer in module.modules():
        if isinstance(layer, _LINEAR_LAYERS):
            nn.init.normal_(layer.weight, 0.0, std)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, std)
        else:
            continue
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)

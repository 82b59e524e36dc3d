"""GAN image inpainting: Context Encoder, Partial Convolution and EdgeConnect on one pipeline."""

__version__ = "0.1.0"

"""GAN image inpainting: Context Encoder, Partial Convolution and EdgeConnect on one pipeline.

`from inpaintlab import Inpainter` gives the inference API (inpaintlab.inference.inpainter); it is
imported on first use, so that `import inpaintlab` (and the command line's start) does not
load Lightning.
"""

__version__ = "0.1.0"
__all__ = ["Inpainter", "__version__"]


def __getattr__(name: str):
    if name == "Inpainter":
        from inpaintlab.inference.inpainter import Inpainter

        return Inpainter
    raise AttributeError(f"module 'inpaintlab' has no attribute {name!r}")

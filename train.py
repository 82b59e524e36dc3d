"""Train an inpainting GAN from a checkout: `python train.py model=context_encoder mask=freeform`
(the same as `inpaintlab train ...`)."""

import sys

from inpaintlab.apps.tasks import run_train

if __name__ == "__main__":
    run_train(sys.argv)

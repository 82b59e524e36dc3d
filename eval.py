"""Evaluate checkpoints and classical baselines on the same images and masks (the same as
`inpaintlab eval ...`):

python eval.py ckpt_path=<run folder>/checkpoints/best.ckpt
python eval.py methods='[ckpt:<run>/checkpoints/best.ckpt,telea,navier_stokes,biharmonic]'
"""

import sys

from inpaintlab.apps.tasks import run_eval

if __name__ == "__main__":
    run_eval(sys.argv)

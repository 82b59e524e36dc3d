"""Our training step against the reference implementations' iterations, in one run.

Usage: python benchmarks/bench_reference.py --edgeconnect <checkout> --pconv <checkout>
       [--steps 3] [--warmup 1] [--precision 32-true]
<checkout> is a clone of https://github.com/knazeri/edge-connect (the official EdgeConnect)
or of https://github.com/naoto0804/pytorch-inpainting-with-partial-conv (a PConv port with
the paper's VGG16 loss); either may be left out. Nothing of theirs is copied: their modules
are imported from the checkout. Their VGG networks get random weights (the same cost as
ImageNet's), as ours do. A reference's iteration is what its training loop does per batch
once the batch is on the device (forward, losses, backward, optimiser steps; its data
loading, Canny included, is left out); ours is `bench_step.py`'s step alone on the same
shapes. Each side runs in a fresh process, one after the other, so that machines whose
speed drifts between days compare like with like.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
import torchvision
from bench_step import in_fresh_process
from bench_train import set_threads
from common import describe_machine

# reference case: (our bench_step case, batch, size)
CASES = {
    "edgeconnect_edge": ("ec_edge", 8, 128),
    "edgeconnect_inpaint": ("ec_inpaint", 8, 128),
    "pconv_port": ("pconv_256", 8, 256),
}
# the settings of EdgeConnect's config.yml.example that its two models read
EDGECONNECT_CONFIG = {
    "MODE": 1,
    "GPU": [0],
    "LR": 1e-4,
    "D2G_LR": 0.1,
    "BETA1": 0.0,
    "BETA2": 0.9,
    "GAN_LOSS": "nsgan",
    "FM_LOSS_WEIGHT": 10,
    "L1_LOSS_WEIGHT": 1,
    "CONTENT_LOSS_WEIGHT": 0.1,
    "STYLE_LOSS_WEIGHT": 250,
    "INPAINT_ADV_LOSS_WEIGHT": 0.1,
}


def random_weight_vggs() -> None:
    """Make torchvision's VGG constructors ignore `pretrained=True`: no download, random
    weights (the references ask for ImageNet's, which this machine cannot fetch)."""
    for name in ("vgg16", "vgg19"):
        build = getattr(torchvision.models, name)
        setattr(torchvision.models, name, lambda *_, _build=build, **__: _build(weights=None))


def inputs(batch: int, size: int, channels: int) -> tuple[torch.Tensor, ...]:
    """Smooth images, 0/1 edges and 0/1 hole masks (1 = hole), made once."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(batch, channels, size // 8, size // 8, generator=generator)
    images = torch.nn.functional.interpolate(coarse, size=size, mode="bicubic").clamp(0, 1)
    edges = (torch.rand(batch, 1, size, size, generator=generator) < 0.05).float()
    masks = torch.zeros(batch, 1, size, size)
    masks[..., size // 4 : size // 2, size // 4 : 3 * size // 4] = 1
    return images, edges, masks


def edgeconnect_iteration(checkout: Path, stage: str, batch: int, size: int) -> Callable:
    """One batch of the official EdgeConnect training loop for the edge or the inpaint model."""
    sys.path.insert(0, str(checkout))
    from src.models import EdgeModel, InpaintingModel  # the checkout's own package

    config = SimpleNamespace(PATH=tempfile.mkdtemp(), **EDGECONNECT_CONFIG)
    channels = 1 if stage == "edge" else 3
    model = (EdgeModel if stage == "edge" else InpaintingModel)(config)
    images, edges, masks = inputs(batch, size, channels)

    def iteration() -> None:
        _, gen_loss, dis_loss, _ = model.process(images, edges, masks)
        # Their backward() steps the discriminator between the two backward passes, which
        # torch >= 1.5 refuses (the generator's graph holds the weights the step changes):
        # both passes first, then both steps, the same work in the order torch allows.
        dis_loss.backward()
        gen_loss.backward()
        model.dis_optimizer.step()
        model.gen_optimizer.step()

    return iteration


def pconv_port_iteration(checkout: Path, batch: int, size: int) -> Callable:
    """One batch of the PConv port's training loop (its VGG16 loss and Adam at 2e-4)."""
    sys.path.insert(0, str(checkout))
    import opt  # the checkout's loss weights
    from loss import InpaintingLoss
    from net import PConvUNet, VGG16FeatureExtractor

    model = PConvUNet()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    criterion = InpaintingLoss(VGG16FeatureExtractor())
    gt, _, holes = inputs(batch, size, 3)
    mask = (1 - holes).expand(-1, 3, -1, -1).contiguous()  # the port's masks: 1 = valid
    image = gt * mask

    def iteration() -> None:
        output, _ = model(image, mask)
        losses = criterion(image, mask, output, gt)
        loss = sum(weight * losses[key] for key, weight in opt.LAMBDA_DICT.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return iteration


def time_reference(case: dict) -> dict:
    """The child process: seconds per batch of one reference iteration."""
    set_threads(case["threads"], 1)
    random_weight_vggs()
    _, batch, size = CASES[case["name"]]
    checkout = Path(case["checkout"])
    if case["name"] == "pconv_port":
        iteration = pconv_port_iteration(checkout, batch, size)
    else:
        iteration = edgeconnect_iteration(checkout, case["name"].split("_")[1], batch, size)
    for _ in range(case["warmup"]):
        iteration()
    start = time.perf_counter()
    for _ in range(case["steps"]):
        iteration()
    return {"s_per_batch": (time.perf_counter() - start) / case["steps"]}


def ours(name: str, args: argparse.Namespace) -> float:
    """Seconds per batch of our step alone on the reference's shapes (bench_step.py)."""
    case = {
        "name": CASES[name][0],
        "precision": args.precision,
        "channels_last": False,
        "compile": False,
        "size": None,
        "batch": None,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "device": "cpu",
        "profile": False,
    }
    return in_fresh_process(case)["step"]["s_per_batch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edgeconnect", type=Path, help="a checkout of knazeri/edge-connect")
    parser.add_argument("--pconv", type=Path, help="a checkout of naoto0804's PConv port")
    parser.add_argument("--precision", default="32-true", help="ours; the references run fp32")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return print(json.dumps(time_reference(json.loads(args.case))))
    checkouts = {
        "edgeconnect_edge": args.edgeconnect,
        "edgeconnect_inpaint": args.edgeconnect,
        "pconv_port": args.pconv,
    }
    if not any(checkouts.values()):
        parser.error("give --edgeconnect and/or --pconv: the reference checkouts to time")
    print(describe_machine("cpu"))
    print(f"ours in {args.precision}, the references in fp32; {args.steps} timed batches each")
    for name, checkout in checkouts.items():
        if checkout is None:
            continue
        case = {"name": name, "checkout": str(checkout.resolve()), "threads": args.threads}
        case.update(steps=args.steps, warmup=args.warmup)
        reference = in_fresh_process(case, script=__file__)["s_per_batch"]
        mine = ours(name, args)
        _, batch, size = CASES[name]
        print(
            f"{name:20s} batch {batch} {size:4d} px  reference {reference:7.2f} s/batch  "
            f"ours {mine:7.2f} s/batch  ours vs reference {reference / mine:5.2f}x"
        )


if __name__ == "__main__":
    main()

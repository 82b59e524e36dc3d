"""benchmarks/bench_reference.py times a reference checkout's own iteration: stand-in
checkouts with the references' module layout (no network, no real reference code) check that
it imports from the checkout, runs warm-up plus timed batches, and never asks for ImageNet
weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_reference.py"

EDGECONNECT_MODELS = """
import os
import torch


class _Model(torch.nn.Module):
    channels = 1

    def __init__(self, config):
        super().__init__()
        self.generator = torch.nn.Conv2d(self.channels + 2, self.channels, 3, padding=1)
        self.discriminator = torch.nn.Conv2d(self.channels, 1, 3, padding=1)
        self.gen_optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.LR)
        self.dis_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=config.LR)

    def process(self, images, edges, masks):
        with open(os.environ["CALLS"], "a") as calls:
            calls.write(f"{type(self).__name__} {tuple(images.shape)}\\n")
        fake = self.generator(torch.cat([images, edges, masks], 1))
        # like the released code: the generator's loss runs through the discriminator
        gen_loss = self.discriminator(fake).mean()
        dis_loss = self.discriminator(fake.detach()).mean() - self.discriminator(images).mean()
        return fake, gen_loss, dis_loss, []


class EdgeModel(_Model):
    channels = 1


class InpaintingModel(_Model):
    channels = 3
"""

PCONV_FILES = {
    "opt.py": "LAMBDA_DICT = {'valid': 1.0, 'hole': 6.0}\n",
    "net.py": """
        import os
        import torch
        from torchvision import models


        class VGG16FeatureExtractor(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.vgg = models.vgg16(pretrained=True)  # as the port asks


        class PConvUNet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

            def forward(self, image, mask):
                with open(os.environ["CALLS"], "a") as calls:
                    calls.write(f"PConvUNet {tuple(image.shape)}\\n")
                return self.conv(image), mask
        """,
    "loss.py": """
        class InpaintingLoss:
            def __init__(self, extractor):
                self.extractor = extractor

            def __call__(self, image, mask, output, gt):
                hole = ((1 - mask) * (output - gt)).abs().mean()
                return {"valid": (mask * (output - gt)).abs().mean(), "hole": hole}
        """,
}


@pytest.fixture
def checkouts(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "ec" / "src").mkdir(parents=True)
    (tmp_path / "ec" / "src" / "models.py").write_text(EDGECONNECT_MODELS)
    (tmp_path / "pc").mkdir()
    for name, text in PCONV_FILES.items():
        (tmp_path / "pc" / name).write_text(textwrap.dedent(text))
    return {"edgeconnect": tmp_path / "ec", "pconv": tmp_path / "pc"}


def time_case(name: str, checkout: Path, calls: Path) -> subprocess.CompletedProcess:
    case = {"name": name, "checkout": str(checkout), "threads": 1, "steps": 2, "warmup": 1}
    env = {**os.environ, "CALLS": str(calls), "TORCH_HOME": str(calls.parent / "no_weights")}
    command = [sys.executable, str(BENCH), "--case", json.dumps(case)]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize(
    ("name", "checkout", "called"),
    [
        ("edgeconnect_edge", "edgeconnect", "EdgeModel (8, 1, 128, 128)"),
        ("edgeconnect_inpaint", "edgeconnect", "InpaintingModel (8, 3, 128, 128)"),
        ("pconv_port", "pconv", "PConvUNet (8, 3, 256, 256)"),
    ],
)
def test_a_reference_iteration_runs_from_the_checkout_at_the_issues_shapes(
    checkouts, tmp_path, name, checkout, called
):
    calls = tmp_path / "calls.txt"
    result = time_case(name, checkouts[checkout], calls)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1])["s_per_batch"] > 0
    # one warm-up batch and two timed ones, on the shapes of the speed issue's table
    assert calls.read_text().splitlines() == [called] * 3
    assert not (tmp_path / "no_weights").exists()  # no ImageNet weights were fetched


def test_without_a_checkout_it_says_what_to_give():
    result = subprocess.run(
        [sys.executable, str(BENCH)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "give --edgeconnect and/or --pconv" in result.stderr

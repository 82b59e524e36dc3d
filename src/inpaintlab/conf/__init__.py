"""The Hydra configs of inpaintlab, shipped in the package: `CONFIG_DIR` is their folder."""

from pathlib import Path

CONFIG_DIR = Path(__file__).parent

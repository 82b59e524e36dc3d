"""Release files: what inference needs from a training checkpoint, as safetensors.

A release holds the weights of the networks that inpaint (the generators; their moving
average where the run kept one), in fp32 or fp16, and in its metadata the model class, its
settings, the run's config and the inpaintlab version. Discriminators, optimiser states and
the loop's state stay in the checkpoint, so a release is a fraction of its size. Reading one
runs no pickled code (safetensors holds tensors and strings only).

`resolve_weights` turns what `Inpainter.from_pretrained` is given into a local file: a
release file, a training checkpoint, or a name from the registry (name -> URL and sha256),
downloaded once into the torch hub cache and checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

from inpaintlab import __version__
from inpaintlab.data.io import check_writable, written_in_one_go
from inpaintlab.errors import CheckpointError
from inpaintlab.models.checkpoint import CHECKPOINT_KEY, read_checkpoint
from inpaintlab.models.loading import model_from_checkpoint, untrained_model

if TYPE_CHECKING:
    from inpaintlab.models.base import InpaintingModule

SUFFIX = ".safetensors"
FORMAT = "inpaintlab-release-1"
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
REGISTRY = Path(__file__).with_name("registry.json")


def inference_networks(model: InpaintingModule) -> dict[str, torch.nn.Module]:
    """The networks that inpaint (every network but the discriminators), as inference uses
    them: the moving average where the run kept one."""
    names = [name for name in model.network_names if "discriminator" not in name]
    return {name: model.inference_network(name) for name in names}


def write_release(ckpt: str | Path, out: str | Path, dtype: str = "fp32") -> Path:
    """Write the release file of training checkpoint `ckpt` to `out` (*.safetensors)."""
    out = Path(out)
    if out.suffix != SUFFIX:
        raise CheckpointError(f"cannot write {out}: release files are named *{SUFFIX}")
    if dtype not in DTYPES:
        raise CheckpointError(f"unknown --dtype {dtype}: use {' or '.join(DTYPES)}")
    check_writable(out.parent)
    checkpoint = read_checkpoint(ckpt)
    model = model_from_checkpoint(checkpoint)
    tensors = {
        f"{name}.{key}": value.to(DTYPES[dtype]) if value.is_floating_point() else value
        for name, network in inference_networks(model).items()
        for key, value in network.state_dict().items()
    }
    metadata = {
        "format": FORMAT,
        "model": checkpoint[CHECKPOINT_KEY]["model"],
        "hyper_parameters": json.dumps(checkpoint["hyper_parameters"]),
        "config": json.dumps(checkpoint[CHECKPOINT_KEY]["config"]),
        "inpaintlab_version": __version__,
        "dtype": dtype,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with written_in_one_go(out) as partial:
        save_file({k: v.contiguous() for k, v in tensors.items()}, partial, metadata)
    return out


def read_release(path: Path) -> InpaintingModule:
    """Rebuild the model of a release file, its inference networks loaded (eval mode)."""
    try:
        with safe_open(path, "pt") as handle:
            metadata = handle.metadata() or {}
            names = handle.keys()  # the handle itself is not iterable
            tensors = {name: handle.get_tensor(name) for name in names}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"cannot read release file {path} ({error})") from error
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an inpaintlab release file: write one with `inpaintlab release`"
        )
    checkpoint = {
        CHECKPOINT_KEY: {"model": metadata["model"], "config": json.loads(metadata["config"])},
        "hyper_parameters": json.loads(metadata["hyper_parameters"]),
    }
    model = untrained_model(checkpoint)
    for name, network in inference_networks(model).items():
        own = {
            key.removeprefix(f"{name}."): value
            for key, value in tensors.items()
            if key.startswith(f"{name}.")
        }
        try:
            network.load_state_dict(own)
        except RuntimeError as error:
            raise CheckpointError(
                f"the weights of {path} do not fit its model's {name} ({error}): the file was "
                "edited, or written by another version of inpaintlab"
            ) from error
    return model.eval()


def resolve_weights(source: str | os.PathLike, registry: Path = REGISTRY) -> Path:
    """A local file for `source`: a path (anything with a suffix or a folder, or that exists),
    else the registry's file of that name, downloaded into the torch hub cache on first use
    and checked by sha256."""
    path = Path(source)
    if path.exists() or path.suffix or path.parent != Path("."):
        return path  # a file name: reading it says what is wrong with it
    entries = json.loads(registry.read_text()) if registry.exists() else {}
    if str(source) not in entries:
        known = ", ".join(sorted(entries)) or "none are published yet"
        raise CheckpointError(
            f"{source} is neither a file nor a registered model ({known}): pass a release file "
            "or a checkpoint written by train.py"
        )
    entry = entries[str(source)]
    target = Path(torch.hub.get_dir()) / "inpaintlab" / f"{source}{SUFFIX}"
    if not target.exists():
        download(entry["url"], target)
    if sha256(target) != entry["sha256"]:
        target.unlink()
        raise CheckpointError(
            f"the download of {source} from {entry['url']} does not match its checksum, so it "
            "was deleted: try again, or download it by hand and pass the file"
        )
    return target


def download(url: str, target: Path) -> None:
    """Fetch `url` into `target` with a progress bar; one line when it cannot."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with written_in_one_go(target) as partial:
            torch.hub.download_url_to_file(url, str(partial), progress=True)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise CheckpointError(
            f"cannot download {url} ({error}): connect to the internet, or download it by "
            f"hand to {target}"
        ) from error


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_any(source: str | os.PathLike, registry: Path = REGISTRY) -> tuple[Any, str]:
    """The model of a release file, a training checkpoint or a registered name, and its
    file's name."""
    path = resolve_weights(source, registry)
    if path.suffix == SUFFIX:
        return read_release(path), path.name
    return model_from_checkpoint(read_checkpoint(path)), path.name

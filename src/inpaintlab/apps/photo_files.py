"""The file side of `inpaintlab inpaint`: pair photos with masks, read masks, write results."""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from rich.console import Console
from rich.progress import track
from torch import Tensor

from inpaintlab.data.convert import mask_file_holes, read_alpha, read_photo
from inpaintlab.data.io import check_writable, image_suffixes_text, is_image_file, save_image
from inpaintlab.errors import DataError, InpaintlabError
from inpaintlab.inference.inpainter import (
    FULL_MASK_MESSAGE,
    FullMaskWarning,
    Inpainter,
    binary_mask,
)

OUTPUT_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
ALPHA = "alpha"  # --mask alpha: the photo's transparent pixels are the holes
SHOWN = 5  # names listed in an error before "and N more"


@dataclass(frozen=True)
class Job:
    """One photo to inpaint: its mask file (None: its alpha channel) and where results go."""

    image: Path
    mask: Path | None
    out: Path
    compare: Path | None


def listing(names: list[str]) -> str:
    """The first few names, comma separated, and how many more there are."""
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def images_by_stem(folder: Path) -> dict[str, Path]:
    """The image files of a folder keyed by file name without suffix (one file per stem)."""
    files = sorted(p for p in folder.iterdir() if is_image_file(p))
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            raise DataError(
                f"{folder} holds {by_stem[path.stem].name} and {path.name}: "
                "keep one file per name so that photos and masks pair unambiguously"
            )
        by_stem[path.stem] = path
    return by_stem


def paired(images: Path, masks: Path | None) -> list[tuple[Path, Path | None]]:
    """(photo, mask) pairs of two folders, matched by file name without suffix."""
    photos = images_by_stem(images)
    if not photos:
        raise DataError(
            f"{images} holds no images ({image_suffixes_text()}): pass a folder of photos"
        )
    if masks is None:
        return [(photo, None) for photo in photos.values()]
    mask_files = images_by_stem(masks)
    lonely_photos = sorted(photos.keys() - mask_files.keys())
    lonely_masks = sorted(mask_files.keys() - photos.keys())
    if lonely_photos or lonely_masks:
        problems = [f"photos without a mask: {listing(lonely_photos)}"] if lonely_photos else []
        problems += [f"masks without a photo: {listing(lonely_masks)}"] if lonely_masks else []
        raise DataError(
            f"{images} and {masks} do not pair up by name ({'; '.join(problems)}): "
            "name each mask like its photo (photo.jpg -> photo.png)"
        )
    return [(photo, mask_files[stem]) for stem, photo in photos.items()]


def compare_path(out: Path) -> Path:
    """Where --compare writes the side-by-side sheet of a result."""
    return out.with_name(f"{out.stem}_compare.png")


def plan_jobs(image: str, mask: str, out: str, compare: bool) -> list[Job]:
    """The photos to inpaint and their output paths, checked before any model is loaded."""
    image_path, out_path = Path(image), Path(out)
    mask_path = None if mask == ALPHA else Path(mask)
    if image_path.is_dir():
        if mask_path is not None and not mask_path.is_dir():
            raise DataError(f"--image {image} is a folder, so --mask must be a folder or alpha")
        if out_path.is_file():
            raise DataError(f"--image {image} is a folder, so --out must be a folder")
        pairs = paired(image_path, mask_path)
        outs = [out_path / f"{photo.stem}.png" for photo, _ in pairs]
    elif image_path.is_file():
        if mask_path is not None and not mask_path.is_file():
            problem = "is a folder, not a file" if mask_path.is_dir() else "does not exist"
            raise DataError(f"mask file {mask} {problem}: pass a mask of the photo")
        pairs = [(image_path, mask_path)]
        outs = [out_path / f"{image_path.stem}.png" if out_path.is_dir() else out_path]
    else:
        raise DataError(f"--image {image} does not exist: pass a photo or a folder of photos")
    if outs[0].suffix.lower() not in OUTPUT_SUFFIXES:
        raise DataError(f"cannot write {outs[0]}: give --out a .png or .jpg name, or a folder")
    jobs = [
        Job(photo, mask_file, result, compare_path(result) if compare else None)
        for (photo, mask_file), result in zip(pairs, outs, strict=True)
    ]
    refuse_to_replace_inputs(jobs)
    for folder in sorted({job.out.parent for job in jobs}):
        check_writable(folder)
    return jobs


def outputs(job: Job) -> list[Path]:
    """The files a job writes: its result and, with --compare, its comparison sheet."""
    return [path for path in (job.out, job.compare) if path is not None]


def refuse_to_replace_inputs(jobs: list[Job]) -> None:
    """Raise if an output would be one of the photos or masks read (--overwrite or not)."""
    inputs = {path.resolve() for job in jobs for path in (job.image, job.mask) if path}
    clashes = [str(path) for job in jobs for path in outputs(job) if path.resolve() in inputs]
    if clashes:
        raise InpaintlabError(
            f"{listing(clashes)} would replace an input photo or mask, which inpaintlab never "
            "does: choose another --out"
        )


def refuse_to_overwrite(jobs: list[Job]) -> None:
    """Raise if any output (result or comparison) exists; nothing is written then."""
    existing = [str(path) for job in jobs for path in outputs(job) if path.exists()]
    if existing:
        verb = "exists" if len(existing) == 1 else "exist"
        raise InpaintlabError(
            f"{listing(existing)} already {verb}: pass --overwrite to replace, "
            "or choose another --out"
        )


def hole_map(job: Job, mask_hole: str) -> Tensor:
    """How much each pixel is a hole, 1 x 1 x H x W in [0, 1], from the mask file or alpha."""
    if job.mask is None:
        return 1 - read_alpha(job.image)
    return mask_file_holes(job.mask, mask_hole)


def read_mask(job: Job, size: tuple[int, int], args: argparse.Namespace) -> Tensor:
    """The job's 0/1 mask (1 = hole) at the photo's `size`, thresholded and dilated."""
    holes = hole_map(job, args.mask_hole)
    if tuple(holes.shape[-2:]) != size:
        if not args.resize_mask:
            found, wanted = holes.shape[-2:]
            raise DataError(
                f"mask {job.mask} is {found}x{wanted} but photo {job.image} is "
                f"{size[0]}x{size[1]} (height x width): pass --resize-mask or a mask of its size"
            )
        holes = F.interpolate(holes, size=size, mode="nearest-exact")
    return binary_mask(holes, args.threshold, args.dilate)


def compare_sheet(image: Tensor, mask: Tensor, result: Tensor) -> Tensor:
    """input | mask (white = hole) | result side by side, on a white background."""
    tiles = torch.cat([image, mask.expand_as(image), result])
    return torchvision.utils.make_grid(tiles, nrow=3, padding=8, pad_value=1.0)


def read_pair(job: Job, args: argparse.Namespace) -> tuple[Tensor, Tensor]:
    """The job's photo and its 0/1 mask at the photo's size."""
    image = read_photo(job.image)
    return image, read_mask(job, tuple(image.shape[-2:]), args)


def inpaint_job(job: Job, inpainter: Inpainter, args: argparse.Namespace, console: Console):
    """Inpaint one photo and write its result (and comparison sheet)."""
    image, mask = read_pair(job, args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FullMaskWarning)  # reported below, once it worked
        result = inpainter(image, mask, args.strategy)
    if not mask.any():
        console.print(f"note: {job.image}: the mask has no holes; the photo is written unchanged")
    elif mask.all():
        console.print(f"warning: {job.image}: {FULL_MASK_MESSAGE}")
    save_image(result[0], job.out)
    if job.compare is not None:
        save_image(compare_sheet(image, mask, result), job.compare)


def inpaint_photos(jobs: list[Job], args: argparse.Namespace) -> int:
    """Run every job, with a progress bar for more than one. Everything that can refuse a job
    is checked before the first result is written: existing outputs (without --overwrite),
    and every photo and mask (readable, sizes that match)."""
    if not args.overwrite:
        refuse_to_overwrite(jobs)
    if len(jobs) > 1:
        for job in jobs:
            read_pair(job, args)
    inpainter = Inpainter.from_pretrained(args.ckpt, args.device)
    console = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    for job in track(jobs, description="inpainting", console=console, disable=len(jobs) == 1):
        inpaint_job(job, inpainter, args, console)
    where = jobs[0].out if len(jobs) == 1 else f"{len(jobs)} results to {jobs[0].out.parent}"
    print(f"wrote {where}")
    return 0

"""Export a checkpoint's inpainting pipeline for deployment without inpaintlab: a torch.export
program (.pt2, needs PyTorch) or an ONNX model (.onnx, runs in ONNX Runtime without PyTorch;
the [onnx] extra).

The exported graph maps (image B x C x H x W in [0, 1], mask B x 1 x H x W, 1 = hole) at one
fixed H x W (any batch size) to the composite, as `Inpainter` computes it. It does not
check its inputs: masks must be 0/1, and a Context Encoder trained in the centre setting must
get holes inside the centre only.

Example:
    >>> program = torch.export.load("model.pt2")  # doctest: +SKIP
    >>> result = program.module()(image, mask)  # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession("model.onnx")  # doctest: +SKIP
    >>> result = session.run(None, {"image": image, "mask": mask})[0]  # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from inpaintlab.data.io import check_writable, written_in_one_go
from inpaintlab.errors import InpaintlabError, flat_message, require_extra
from inpaintlab.inference.inpainter import Inpainter, InpaintingPipeline

PROGRAM, ONNX = ".pt2", ".onnx"
INPUT_NAMES = ("image", "mask")
# warns that it guesses the type of an empty list argument (EdgeConnect's while_loop); the
# program it writes loads and runs correctly
SERIALIZER_LOGGER = "torch._export.serde.serialize"


def default_size(inpainter: Inpainter) -> tuple[int, int]:
    """The size the model was trained at (from its run config), or its fixed size."""
    size = inpainter.recorded_side
    if size is None:
        raise InpaintlabError(
            f"{inpainter.name} records no training image size: pass --size HEIGHT WIDTH"
        )
    return size, size


def example_inputs(
    channels: int, height: int, width: int, batch: int = 2, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Random images with a centred hole (every model can fill it), to trace and to check."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, channels, height, width, generator=generator)
    mask = torch.zeros(batch, 1, height, width)
    mask[..., height * 3 // 8 : height * 5 // 8, width * 3 // 8 : width * 5 // 8] = 1
    return image, mask


def check_exportable(inpainter: Inpainter) -> None:
    """Refuse what a graph of fixed operations cannot express, with the reason."""
    detector = getattr(inpainter.model, "edge_detector", None)
    if detector is not None and detector.sigma == 0:
        raise InpaintlabError(
            f"{inpainter.name} draws a random Canny sigma for every image (edges.sigma=0), "
            "which an exported graph cannot do: export a model trained with a fixed sigma"
        )


def export_program(inpainter: Inpainter, height: int, width: int) -> torch.export.ExportedProgram:
    """torch.export the inpainter's pipeline at height x width, with a dynamic batch size."""
    check_exportable(inpainter)
    pipeline = InpaintingPipeline(inpainter.model).eval()
    inputs = example_inputs(inpainter.channels, height, width)
    batch = torch.export.Dim("batch", min=1)
    try:
        return torch.export.export(
            pipeline, inputs, dynamic_shapes=({0: batch}, {0: batch}), strict=False
        )
    except InpaintlabError:
        raise
    except Exception as error:
        reason = flat_message(error, limit=200)
        raise InpaintlabError(
            f"torch.export cannot trace {inpainter.name} ({type(inpainter.model).__name__}) "
            f"at {height}x{width}: {reason}"
        ) from error


Runner = Callable[[Tensor, Tensor], Any]  # (image, mask) -> the composite, a tensor or array


def max_difference(run: Runner, inpainter: Inpainter, height: int, width: int) -> float:
    """Largest absolute difference between `run(image, mask)` (the exported graph) and the
    eager inpainter on new inputs (another batch size and other pixels than those traced)."""
    image, mask = example_inputs(inpainter.channels, height, width, batch=3, seed=1)
    with torch.inference_mode():
        exported = torch.as_tensor(run(image, mask))
    return float((exported - inpainter(image, mask)).abs().max())


class Exported(NamedTuple):
    """What `export_checkpoint` wrote, and how far its graph is from the eager inpainter."""

    path: Path
    height: int
    width: int
    max_difference: float


def export_checkpoint(
    ckpt: str | Path, out: str | Path, size: tuple[int, int] | None = None
) -> Exported:
    """Export `ckpt` to `out` (.pt2 or .onnx) at `size` (default: the training size), then
    check the written file against the eager inpainter."""
    out = Path(out)
    if out.suffix not in (PROGRAM, ONNX):
        raise InpaintlabError(
            f"cannot write {out}: name it *{PROGRAM} (a torch.export program) or *{ONNX} "
            "(an ONNX model)"
        )
    if out.is_dir():
        raise InpaintlabError(f"cannot write {out}: it is a folder; give a file name *{out.suffix}")
    if out.suffix == ONNX:
        require_extra("onnx", "an ONNX export")
    check_writable(out.parent)
    inpainter = Inpainter.from_checkpoint(ckpt, "cpu")
    height, width = size or default_size(inpainter)
    program = export_program(inpainter, height, width)
    out.parent.mkdir(parents=True, exist_ok=True)
    write = write_onnx if out.suffix == ONNX else write_program
    with written_in_one_go(out) as partial:
        run = write(program, inpainter, partial)
    return Exported(out, height, width, max_difference(run, inpainter, height, width))


def write_program(
    program: torch.export.ExportedProgram, inpainter: Inpainter, path: Path
) -> Runner:
    """Save the program at `path`; returns the written file loaded back, as a callable.
    (Through memory: torch.export wants file names ending in .pt2, and `path` is the hidden
    name the file has until it is complete.)"""
    buffer = io.BytesIO()
    with quiet_logger(SERIALIZER_LOGGER):
        torch.export.save(program, buffer)
    path.write_bytes(buffer.getvalue())
    return torch.export.load(io.BytesIO(path.read_bytes())).module()


def write_onnx(program: torch.export.ExportedProgram, inpainter: Inpainter, path: Path) -> Runner:
    """Convert the program to ONNX at `path`; returns an ONNX Runtime session on the written
    file, as a callable (tensors in, a numpy array out)."""
    import onnxruntime

    try:
        # onnxscript's graph optimiser folds the partial convolution's `sum + 1e-8` into
        # `sum`, and the ratio then divides 0 by 0 in every hole: ONNX Runtime optimises the
        # graph itself when it loads it
        onnx_program = torch.onnx.export(
            program, input_names=list(INPUT_NAMES), dynamo=True, optimize=False, verbose=False
        )
    except Exception as error:
        raise InpaintlabError(
            f"cannot convert {inpainter.name} to ONNX: {flat_message(error, limit=200)}"
        ) from error
    onnx_program.save(str(path))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: not its notes on what it could not fold
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(image: Tensor, mask: Tensor) -> Any:
        arrays = (image.numpy(), mask.numpy())
        return session.run(None, dict(zip(INPUT_NAMES, arrays, strict=True)))[0]

    return run


@contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Only errors from logger `name` inside the block."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)

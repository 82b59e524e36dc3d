"""`inpaintlab app`: a page where you paint the damage on a photo and get it back restored.

Upload a photo, paint over the scratches, stains or the object to remove (the editor's
toolbar has the brush and its size, the eraser and undo), optionally widen the painted holes,
press Inpaint: the page shows the photo before and after and offers the result as a PNG at
the photo's full size. The photo is read on the server exactly as `inpaintlab inpaint` reads
it (16-bit, CMYK, EXIF orientation, broken files: the same rules and messages); the page's
canvas only shows it and collects the strokes. Needs the [app] extra (gradio). The server
listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from inpaintlab.data.convert import read_photo
from inpaintlab.data.io import DECODE_ERRORS, save_image, to_uint8
from inpaintlab.errors import DataError, InpaintlabError, flat_message, one_line
from inpaintlab.inference.inpainter import Inpainter, binary_mask

MAX_MEGAPIXELS = 50  # larger scans: `inpaintlab inpaint --strategy crop` on the command line
MAX_DILATE = 25  # px the painted holes can be widened by
HOLE_COLOUR = "#ff2020"


def photo_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding its pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except DECODE_ERRORS as error:
        raise DataError(
            f"{path.name} is not an image this page can read ({flat_message(error, 120)}): "
            "upload a PNG, JPEG, TIFF, BMP or WebP photo"
        ) from error


def read_upload(path: str | None) -> Tensor:
    """The uploaded photo as a 1 x C x H x W tensor in [0, 1], or one readable DataError."""
    if not path:
        raise DataError("upload a photo first")
    path = Path(path)
    width, height = photo_size(path)
    if width * height > MAX_MEGAPIXELS * 1_000_000:
        raise DataError(
            f"{path.name} is {width}x{height} ({width * height / 1e6:.0f} megapixels); this page "
            f"takes up to {MAX_MEGAPIXELS}: run `inpaintlab inpaint --strategy crop` on it instead"
        )
    return read_photo(path)


def preview(photo: Tensor) -> np.ndarray:
    """The photo as an H x W x 3 uint8 array for the canvas (grey photos repeated to RGB)."""
    return to_uint8(photo.expand(-1, 3, -1, -1)[0]).permute(1, 2, 0).numpy()


def painted_holes(layers: list[np.ndarray], height: int, width: int) -> Tensor:
    """1 x 1 x H x W map of every pixel painted on any layer, at the photo's size (a canvas
    shown smaller than the photo is scaled back up)."""
    painted = [layer[..., 3] > 0 if layer.shape[-1] == 4 else layer.any(-1) for layer in layers]
    if not painted:
        return torch.zeros(1, 1, height, width)
    holes = torch.from_numpy(np.logical_or.reduce(painted).astype(np.float32))[None, None]
    if holes.shape[-2:] != (height, width):
        holes = F.interpolate(holes, size=(height, width), mode="nearest")
    return holes


def restore(
    inpainter: Inpainter, photo: Tensor | None, editor: dict[str, Any] | None, dilate: int
) -> Tensor:
    """The photo with its painted holes filled; DataError when there is nothing to fill."""
    if photo is None:
        raise DataError("upload a photo first")
    height, width = photo.shape[-2:]
    holes = painted_holes((editor or {}).get("layers") or [], height, width)
    holes = binary_mask(holes, dilate=int(dilate))
    if not holes.any():
        raise DataError("paint over the damage first: the brush marks what to fill")
    return inpainter(photo, holes)


def what_it_fills(inpainter: Inpainter) -> str:
    """One line for the page on where the model can fill."""
    if inpainter.model.fillable_box is None:
        return "Paint anywhere on the photo."
    return (
        "This Context Encoder was trained in the centre setting: it fills the middle half of "
        "each side only, so paint inside the centre of the photo."
    )


def build_page(inpainter: Inpainter):
    """The gradio Blocks of the page around one loaded model."""
    import gradio as gr

    def on_upload(path: str | None):
        if not path:  # the photo was removed: empty the canvas, say nothing
            return None, None
        try:
            photo = read_upload(path)
        except InpaintlabError as error:
            raise gr.Error(one_line(error)) from None
        image = preview(photo)
        return photo, {"background": image, "layers": [], "composite": image}

    def on_inpaint(photo: Tensor | None, editor: dict[str, Any] | None, dilate: int):
        try:
            restored = restore(inpainter, photo, editor, dilate)
        except InpaintlabError as error:
            raise gr.Error(one_line(error)) from None
        except Exception as error:  # a message in the page, never a stack trace
            raise gr.Error(f"inpainting failed: {flat_message(error, 200)}") from None
        out = Path(tempfile.mkdtemp(prefix="inpaintlab_")) / "restored.png"
        save_image(restored[0], out)
        return preview(photo), preview(restored), str(out)

    with gr.Blocks(title="inpaintlab") as page:
        gr.Markdown(f"## Restore a photo with `{inpainter.name}`\n{what_it_fills(inpainter)}")
        photo = gr.State(None)
        upload = gr.File(label="1. Photo", file_types=["image"], type="filepath")
        editor = gr.ImageEditor(
            label="2. Paint over the damage (brush size, eraser and undo in the toolbar)",
            type="numpy",
            image_mode="RGBA",
            sources=(),
            transforms=(),
            brush=gr.Brush(colors=[HOLE_COLOUR], color_mode="fixed", default_size=12),
            eraser=gr.Eraser(default_size=12),
            elem_id="editor",
        )
        dilate = gr.Slider(0, MAX_DILATE, value=0, step=1, label="3. Widen the holes by (px)")
        run = gr.Button("Inpaint", variant="primary", elem_id="inpaint")
        with gr.Row():
            before = gr.Image(label="Before", interactive=False)
            after = gr.Image(label="After", interactive=False)
        download = gr.File(label="Restored photo (PNG, full size)", elem_id="download")
        upload.change(on_upload, inputs=upload, outputs=[photo, editor])
        run.click(on_inpaint, inputs=[photo, editor, dilate], outputs=[before, after, download])
    return page


def serve(
    model: str, host: str = "127.0.0.1", port: int | None = None, device: str = "auto"
) -> None:
    """Load `model` (a release file, a checkpoint or a registry name) and serve the page."""
    inpainter = Inpainter.from_pretrained(model, device=device)
    build_page(inpainter).launch(server_name=host, server_port=port, show_error=True)

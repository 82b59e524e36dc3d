"""`inpaintlab app` in a real browser: upload a photo, paint a stroke on the canvas with the
mouse, press Inpaint, download the result; plus the page's handlers on bad uploads."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from inpaintlab import Inpainter
from inpaintlab.apps import web
from inpaintlab.apps.web import painted_holes, read_upload, restore, what_it_fills
from inpaintlab.errors import DataError
from tests.tiny_checkpoints import save_checkpoint, tiny_model

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEIGHT, WIDTH = 96, 160


@pytest.fixture(scope="module")
def inpainter(tmp_path_factory) -> Inpainter:
    folder = tmp_path_factory.mktemp("model")
    return Inpainter.from_checkpoint(save_checkpoint(tiny_model("pconv"), folder / "tiny.ckpt"))


@pytest.fixture
def photo_file(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs it)")
def test_paint_inpaint_and_download_in_a_browser(inpainter, photo_file, tmp_path):
    from playwright.sync_api import sync_playwright

    from inpaintlab.apps.web import build_page

    path, pixels = photo_file
    port = free_port()
    page = build_page(inpainter)
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            tab = browser.new_page(viewport={"width": 1280, "height": 1400})
            tab.goto(f"http://127.0.0.1:{port}")
            tab.locator("input[type=file]").first.set_input_files(str(path))
            canvas = tab.locator("#editor canvas").last
            tab.wait_for_function(
                "document.querySelector('#editor canvas') !== null", timeout=30_000
            )
            tab.wait_for_timeout(1500)  # the photo is drawn on the canvas
            box = canvas.bounding_box()
            centre_x, centre_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            tab.mouse.move(centre_x - 40, centre_y)
            tab.mouse.down()
            for step in range(1, 9):
                tab.mouse.move(centre_x - 40 + 10 * step, centre_y, steps=2)
            tab.mouse.up()
            tab.locator("#inpaint").click()
            link = tab.locator("#download a").first
            link.wait_for(timeout=60_000)
            with tab.expect_download() as download:
                link.click()
            saved = tmp_path / "restored.png"
            download.value.save_as(saved)
            browser.close()
    finally:
        page.close()
    restored = np.asarray(Image.open(saved).convert("RGB"))
    assert restored.shape == pixels.shape  # the photo's full size, not the canvas's
    changed = (restored != pixels).any(-1)
    assert changed.any()  # the stroke was filled
    rows, cols = np.nonzero(changed)
    # only around the horizontal stroke through the middle: the rest is the photo, bit for bit
    assert abs(rows.mean() - HEIGHT / 2) < HEIGHT / 4 and rows.max() - rows.min() < HEIGHT / 2
    assert abs(cols.mean() - WIDTH / 2) < WIDTH / 4
    assert (restored[:10] == pixels[:10]).all() and (restored[-10:] == pixels[-10:]).all()


def test_painted_holes_are_any_layers_paint_at_the_photos_size():
    layer = np.zeros((48, 80, 4), dtype=np.uint8)
    layer[10:12, 20:40, 3] = 255
    other = np.zeros((48, 80, 4), dtype=np.uint8)
    other[30, 5, 3] = 10
    holes = painted_holes([layer, other], HEIGHT, WIDTH)
    assert holes.shape == (1, 1, HEIGHT, WIDTH)
    expected = torch.zeros(48, 80)
    expected[10:12, 20:40] = 1
    expected[30, 5] = 1
    assert torch.equal(holes[0, 0], expected.repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert not painted_holes([], HEIGHT, WIDTH).any()


def test_restore_keeps_known_pixels_and_refuses_an_empty_mask(inpainter, photo_file):
    path, pixels = photo_file
    photo = read_upload(str(path))
    layer = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    layer[40:50, 60:90, 3] = 255
    restored = restore(inpainter, photo, {"layers": [layer]}, dilate=2)
    known = torch.ones(HEIGHT, WIDTH, dtype=torch.bool)
    known[38:52, 58:92] = False  # the stroke widened by 2 px
    assert torch.equal(restored[0][:, known], photo[0][:, known])
    with pytest.raises(DataError, match="paint over the damage first"):
        restore(inpainter, photo, {"layers": [np.zeros_like(layer)]}, dilate=0)
    with pytest.raises(DataError, match="upload a photo first"):
        restore(inpainter, None, {"layers": [layer]}, dilate=0)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"plain text, not a picture", "not an image this page can read"),
        (None, "upload a photo first"),
    ],
)
def test_bad_uploads_get_one_readable_line(tmp_path, content, says):
    path = None
    if content is not None:
        path = tmp_path / "notes.png"
        path.write_bytes(content)
    with pytest.raises(DataError, match=says) as error:
        read_upload(None if path is None else str(path))
    assert "\n" not in str(error.value)


def test_a_huge_upload_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(web, "MAX_MEGAPIXELS", 0.01)  # 10,000 pixels
    path = tmp_path / "scan.png"
    Image.new("L", (101, 100)).save(path)
    monkeypatch.setattr(web, "read_photo", lambda path: pytest.fail("the photo was decoded"))
    with pytest.raises(DataError, match="101x100.*--strategy crop"):
        read_upload(str(path))


def test_a_sixteen_bit_and_a_cmyk_upload_read_like_the_command_line(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    deep = read_upload(str(tmp_path / "deep.png"))
    assert deep.shape == (1, 1, 64, 64) and 0.9 < float(deep.max()) <= 1.0
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(tmp_path / "print.jpg")
    cmyk = read_upload(str(tmp_path / "print.jpg"))
    assert cmyk.shape == (1, 3, 24, 32)
    assert float(cmyk[0, 0].mean()) > 0.9 and float(cmyk[0, 1].mean()) < 0.1  # red


@pytest.mark.parametrize("kind", ["pconv", "edgeconnect", "ce_random_region", "ce_center"])
def test_every_variant_restores_a_painted_photo_and_says_where_it_fills(kind, photo_file):
    path, _ = photo_file
    model = Inpainter(tiny_model(kind), kind, torch.device("cpu"))
    photo = read_upload(str(path))
    layer = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    layer[44:52, 72:88, 3] = 255  # in the middle: inside the centre model's region too
    restored = restore(model, photo, {"layers": [layer]}, dilate=0)
    assert restored.shape == photo.shape
    assert ("centre" in what_it_fills(model)) == (kind == "ce_center")

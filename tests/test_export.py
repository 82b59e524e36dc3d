"""`inpaintlab export`: torch.export programs and ONNX models give the eager Inpainter's
output."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from inpaintlab.apps.cli import main
from inpaintlab.apps.export import export_checkpoint
from inpaintlab.inference.inpainter import Inpainter
from tests.tiny_checkpoints import KINDS, context_encoder, save_checkpoint, tiny_model


def batch(channels: int, height: int, width: int, n: int = 3):
    generator = torch.Generator().manual_seed(7)
    image = torch.rand(n, channels, height, width, generator=generator)
    mask = torch.zeros(n, 1, height, width)
    mask[0, :, 15:21, 20:30] = 1  # centred holes of several shapes, one sample without any
    mask[2, :, 14:22, 24:27] = 1
    return image, mask


@pytest.mark.parametrize(("kind", "channels"), [*((k, 3) for k in KINDS), ("pconv", 1)])
def test_exported_program_matches_the_eager_inpainter(tmp_path, kind, channels):
    ckpt = save_checkpoint(tiny_model(kind, channels), tmp_path / "model.ckpt")
    exported = export_checkpoint(ckpt, tmp_path / "model.pt2", size=(36, 50))
    assert exported.max_difference < 1e-5 and (exported.height, exported.width) == (36, 50)
    program = torch.export.load(exported.path).module()
    image, mask = batch(channels, 36, 50)
    expected = Inpainter.from_checkpoint(ckpt, "cpu")(image, mask)
    with torch.no_grad():
        result = program(image, mask)
    assert result.shape == expected.shape
    assert torch.allclose(result, expected, atol=1e-5)
    assert torch.equal(result[1], image[1])


@pytest.mark.parametrize(("kind", "channels"), [*((k, 3) for k in KINDS), ("pconv", 1)])
def test_onnx_model_runs_in_onnx_runtime_as_the_eager_inpainter(tmp_path, kind, channels):
    onnxruntime = pytest.importorskip("onnxruntime")
    ckpt = save_checkpoint(tiny_model(kind, channels), tmp_path / "model.ckpt")
    exported = export_checkpoint(ckpt, tmp_path / "model.onnx", size=(36, 50))
    assert exported.max_difference < 1e-5
    session = onnxruntime.InferenceSession(str(exported.path))
    image, mask = batch(channels, 36, 50, n=4)  # another batch size than the traced one
    result = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})[0]
    expected = Inpainter.from_checkpoint(ckpt, "cpu")(image, mask).numpy()
    assert result.shape == expected.shape
    assert np.abs(result - expected).max() < 1e-5
    assert np.array_equal(result[1], image[1].numpy())  # no hole: the photo, bit for bit
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt", "model.onnx"]


@pytest.mark.parametrize("suffix", ["pt2", "onnx"])
def test_a_residual_model_exports_with_its_blended_prefill(tmp_path, suffix):
    """The default CPU recipe's prefill (two equation fills, the depth of each hole pixel)
    goes into the graph; ONNX Runtime's sums round the 20 conjugate-gradient steps
    differently, by about 2e-3 at most (README, Export)."""
    if suffix == "onnx":
        pytest.importorskip("onnxscript")
    model = tiny_model("pconv", prefill="blended", residual=True)
    ckpt = save_checkpoint(model, tmp_path / "model.ckpt")
    exported = export_checkpoint(ckpt, tmp_path / f"model.{suffix}", size=(36, 50))
    assert exported.max_difference < (5e-3 if suffix == "onnx" else 1e-5)


def test_the_context_encoders_cpu_preset_survives_its_checkpoint_and_export(tmp_path):
    """Mask input and skips are rebuilt from the checkpoint and traced into the program."""
    torch.manual_seed(0)
    options = {"mask_input": True, "skips": True}
    model = context_encoder(3, "random_region", options, prefill="mean", residual=True)
    torch.nn.init.normal_(model.generator.decoder[-1].weight, 0, 0.02)  # not the prefill alone
    ckpt = save_checkpoint(model.eval(), tmp_path / "model.ckpt")
    inpainter = Inpainter.from_checkpoint(ckpt, "cpu")
    assert inpainter.model.generator.mask_input and inpainter.model.generator.skips
    exported = export_checkpoint(ckpt, tmp_path / "model.pt2", size=(32, 32))
    image, mask = batch(3, 32, 32)
    with torch.no_grad():
        result = torch.export.load(exported.path).module()(image, mask)
    expected = inpainter(image, mask)
    assert torch.allclose(result, expected, atol=1e-5)
    assert not torch.allclose(expected, model.generator.prefill(image, mask), atol=1e-4)


def test_onnx_without_its_extra_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as find_spec sees a missing module
    ckpt = save_checkpoint(tiny_model("pconv"), tmp_path / "model.ckpt")
    out = tmp_path / "model.onnx"
    assert main(["export", "--ckpt", str(ckpt), "--out", str(out), "--size", "32", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'inpaintlab[onnx]'" in err and "\n" not in err
    assert not out.exists()


def test_a_graph_onnx_cannot_convert_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxscript")

    def unsupported(*args, **kwargs):
        raise RuntimeError("No ONNX function found for aten.some_op\nmany more lines")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    ckpt = save_checkpoint(tiny_model("pconv"), tmp_path / "model.ckpt")
    out = tmp_path / "model.onnx"
    assert main(["export", "--ckpt", str(ckpt), "--out", str(out), "--size", "32", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot convert model.ckpt to ONNX" in err and "aten.some_op" in err
    assert "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]  # no partial file left


def test_export_size_defaults_to_the_training_size(tmp_path, capsys):
    model = tiny_model("pconv")
    model.run_config = {"data": {"image_size": 24}}
    ckpt = save_checkpoint(model, tmp_path / "model.ckpt")
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "m.pt2")]) == 0
    assert "images of 24x24" in capsys.readouterr().out
    program = torch.export.load(tmp_path / "m.pt2")
    image, mask = program.example_inputs[0]
    assert image.shape[-2:] == (24, 24) and mask.shape[-2:] == (24, 24)


def export(ckpt, out, *options: str) -> int:
    return main(["export", "--ckpt", str(ckpt), "--out", str(out), *options])


def test_existing_program_is_kept_without_overwrite(tmp_path, capsys):
    ckpt = save_checkpoint(tiny_model("ce_center"), tmp_path / "model.ckpt")
    out = tmp_path / "model.pt2"
    out.write_bytes(b"earlier export")
    assert export(ckpt, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "--overwrite" in err and "\n" not in err
    assert out.read_bytes() == b"earlier export"
    assert export(ckpt, out, "--overwrite") == 0
    assert torch.export.load(out).module()(*batch(3, 32, 32)).shape == (3, 3, 32, 32)


@pytest.mark.parametrize(
    ("setup", "options", "fragment"),
    [
        ("no_size", (), "--size"),
        ("random_sigma", ("--size", "32", "32"), "random Canny sigma"),
        ("bad_suffix", ("--size", "32", "32"), "*.pt2"),
    ],
)
def test_what_cannot_be_exported_is_a_one_line_error(tmp_path, capsys, setup, options, fragment):
    model = tiny_model("edgeconnect")
    if setup == "random_sigma":
        model.hparams["edges"]["sigma"] = 0.0
    ckpt = save_checkpoint(model, tmp_path / "model.ckpt")
    out = tmp_path / ("model.pt" if setup == "bad_suffix" else "model.pt2")
    assert export(ckpt, out, *options) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and fragment in err and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize("where", ["folder", "parent_is_a_file"])
def test_an_out_that_cannot_be_a_file_is_refused_before_exporting(tmp_path, capsys, where):
    ckpt = save_checkpoint(tiny_model("ce_center"), tmp_path / "model.ckpt")
    if where == "folder":
        out = tmp_path / "model.pt2"
        out.mkdir()
    else:
        (tmp_path / "blocker").write_bytes(b"a file")
        out = tmp_path / "blocker" / "model.pt2"
    before = sorted(tmp_path.rglob("*"))
    assert export(ckpt, out, "--overwrite") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "cannot write" in err
    assert sorted(tmp_path.rglob("*")) == before

"""Release files (`inpaintlab release`, `Inpainter.from_pretrained`): the generators' weights
(their moving average where the run kept one) fill exactly as the checkpoint does, in a
fraction of its size; registered names download once, checked by sha256; bad files and
failed downloads are one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from inpaintlab import Inpainter, __version__
from inpaintlab.apps.cli import main
from inpaintlab.errors import CheckpointError
from inpaintlab.models.release import write_release
from tests.tiny_checkpoints import save_checkpoint, tiny_model

KINDS = ("pconv", "edgeconnect", "ce_center")


def batch(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(2, 1, size, size)
    mask[..., 10:20, 12:22] = 1
    return image, mask


def averaged_checkpoint(kind: str, path: Path) -> Path:
    """A tiny checkpoint whose generators' averages differ from the live weights."""
    model = tiny_model(kind, ema_decay=0.5)
    with torch.no_grad():
        for name in model.trained_generator_names:
            for parameter in getattr(model, name).parameters():
                parameter.add_(0.05)
    return save_checkpoint(model, path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_release_fills_exactly_as_its_checkpoint(tmp_path, kind):
    ckpt = averaged_checkpoint(kind, tmp_path / "model.ckpt")
    release = write_release(ckpt, tmp_path / "model.safetensors")
    image, mask = batch()
    expected = Inpainter.from_checkpoint(ckpt, "cpu")(image, mask)
    assert torch.equal(Inpainter.from_pretrained(release, "cpu")(image, mask), expected)
    with safe_open(release, "pt") as handle:
        keys, metadata = list(handle.keys()), handle.metadata()
    assert keys and not any("discriminator" in key for key in keys)
    assert metadata["inpaintlab_version"] == __version__
    assert metadata["model"].startswith("inpaintlab.models.")
    assert release.stat().st_size < ckpt.stat().st_size


def test_fp16_halves_the_file_and_fills_almost_the_same(tmp_path):
    ckpt = averaged_checkpoint("pconv", tmp_path / "model.ckpt")
    full = write_release(ckpt, tmp_path / "full.safetensors")
    half = write_release(ckpt, tmp_path / "half.safetensors", "fp16")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    image, mask = batch()
    torch.testing.assert_close(
        Inpainter.from_pretrained(half, "cpu")(image, mask),
        Inpainter.from_pretrained(full, "cpu")(image, mask),
        atol=2e-2,
        rtol=0,
    )


def registry_of(tmp_path: Path, release: Path, sha256: str | None = None) -> Path:
    digest = sha256 or hashlib.sha256(release.read_bytes()).hexdigest()
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"tiny": {"url": release.as_uri(), "sha256": digest}}))
    return registry


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(folder))
    return folder


def test_a_registered_name_downloads_once_and_is_checked(tmp_path, hub):
    ckpt = averaged_checkpoint("pconv", tmp_path / "model.ckpt")
    release = write_release(ckpt, tmp_path / "published" / "tiny.safetensors")
    registry = registry_of(tmp_path, release)
    image, mask = batch()
    expected = Inpainter.from_pretrained(release, "cpu")(image, mask)
    first = Inpainter.from_pretrained("tiny", "cpu", registry)
    assert torch.equal(first(image, mask), expected)
    cached = hub / "inpaintlab" / "tiny.safetensors"
    assert cached.is_file()
    release.unlink()  # the second time reads the cache
    assert torch.equal(Inpainter.from_pretrained("tiny", "cpu", registry)(image, mask), expected)


def test_a_download_with_the_wrong_checksum_is_deleted(tmp_path, hub):
    release = write_release(
        averaged_checkpoint("pconv", tmp_path / "m.ckpt"), tmp_path / "tiny.safetensors"
    )
    registry = registry_of(tmp_path, release, sha256="0" * 64)
    with pytest.raises(CheckpointError, match="does not match its checksum, so it was deleted"):
        Inpainter.from_pretrained("tiny", "cpu", registry)
    assert not (hub / "inpaintlab" / "tiny.safetensors").exists()


def test_an_unreachable_download_says_what_to_do(tmp_path, hub):
    registry = registry_of(tmp_path, tmp_path / "nowhere.safetensors", sha256="0" * 64)
    with pytest.raises(CheckpointError, match="cannot download .* download it by hand to"):
        Inpainter.from_pretrained("tiny", "cpu", registry)
    assert not list(hub.rglob("*.safetensors"))


def test_an_unknown_name_lists_the_registry(tmp_path):
    empty = tmp_path / "registry.json"
    empty.write_text("{}")
    with pytest.raises(CheckpointError, match="neither a file nor a registered model .none are"):
        Inpainter.from_pretrained("places2", "cpu", empty)


def test_a_safetensors_file_of_another_origin_is_refused(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an inpaintlab release file"):
        Inpainter.from_pretrained(other, "cpu")


def test_the_release_command_writes_refuses_and_feeds_inpaint(tmp_path, capsys):
    ckpt = save_checkpoint(tiny_model("pconv"), tmp_path / "model.ckpt")
    out = tmp_path / "model.safetensors"
    assert main(["release", "--ckpt", str(ckpt), "--out", str(out), "--dtype", "fp16"]) == 0
    assert "wrote" in capsys.readouterr().out and out.is_file()
    before = out.read_bytes()
    assert main(["release", "--ckpt", str(ckpt), "--out", str(out)]) == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["release", "--ckpt", str(ckpt), "--out", str(tmp_path / "m.pt")]) == 2
    assert "release files are named *.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()

"""What the package's docstring examples (pytest --doctest-modules on src/inpaintlab) are given
beyond the package itself: `release_file`, a tiny untrained release file."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def release_file_for_examples(doctest_namespace, tmp_path_factory) -> None:
    """Put the path of a tiny Partial Convolution release file in the examples' namespace."""
    from inpaintlab.models.release import write_release
    from tests.tiny_checkpoints import save_checkpoint, tiny_model

    folder = tmp_path_factory.mktemp("examples")
    checkpoint = save_checkpoint(tiny_model("pconv"), folder / "pconv.ckpt")
    doctest_namespace["release_file"] = write_release(checkpoint, folder / "pconv.safetensors")

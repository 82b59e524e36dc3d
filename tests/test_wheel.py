"""The built wheel works outside a checkout: its configs ship inside the package, so
`inpaintlab train` and `inpaintlab masks` run from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None):
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel (built from this checkout) and, through a
    .pth file, the test environment's third-party packages; its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        ROOT,
        "--no-deps",
        "--no-build-isolation",
        "-w",
        work / "dist",
        cwd=work,
    )
    (wheel,) = (work / "dist").glob("inpaintlab-*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=work,
    )
    purelib = Path(
        run(
            venv / "bin" / "python",
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
            cwd=work,
        ).stdout.strip()
    )
    # the dependencies, not the checkout: .pth files inside the added folder are not read, so
    # this environment's editable inpaintlab stays out
    (purelib / "test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


def test_the_wheel_is_imported_not_the_checkout(installed, tmp_path):
    result = run(
        installed / "python", "-c", "import inpaintlab; print(inpaintlab.__file__)", cwd=tmp_path
    )
    assert str(ROOT) not in result.stdout and "site-packages" in result.stdout


def test_train_runs_outside_a_checkout(installed, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    run(installed / "inpaintlab", "train", "debug=fdr", "hydra.run.dir=run", cwd=tmp_path, env=env)
    assert (tmp_path / "run" / "train.log").is_file()
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


def test_mask_previews_run_outside_a_checkout(installed, tmp_path):
    run(installed / "inpaintlab", "masks", "freeform", "--out", "masks.png", cwd=tmp_path)
    assert (tmp_path / "masks.png").stat().st_size > 0


def test_a_users_config_folder_joins_through_the_search_path(installed, tmp_path):
    mine = tmp_path / "my_configs" / "mask"
    mine.mkdir(parents=True)
    (mine / "tiny_boxes.yaml").write_text("defaults:\n  - boxes\n  - _self_\n\ncount: [1, 1]\n")
    run(
        installed / "inpaintlab",
        "train",
        "debug=fdr",
        "mask=tiny_boxes",
        "hydra.run.dir=run",
        f"hydra.searchpath=[file://{tmp_path / 'my_configs'}]",
        cwd=tmp_path,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert "tiny_boxes" in (tmp_path / "run" / ".hydra" / "overrides.yaml").read_text()

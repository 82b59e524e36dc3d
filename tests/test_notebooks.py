"""The notebooks run from top to bottom (with small settings) and are committed without outputs."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
QUICK_TRAINING = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "data.image_size=64",
    "data.num_workers=0",
    "callbacks.rich_progress_bar=null",
]
SMALL_SETTINGS = {
    "quickstart.ipynb": {
        "TRAIN_OVERRIDES": QUICK_TRAINING,
        "EVAL_OVERRIDES": ["methods=[telea]", "max_images=2", "num_samples=2"],
        "MASK_KINDS": ["center", "freeform"],
        "PREVIEW_SIZE": 32,
        "WORK_DIR": "outputs",
    },
    "compare_methods.ipynb": {
        "CHECKPOINTS": [],
        "BASELINES": ["telea", "navier_stokes"],
        "DATA_OVERRIDES": [],
        "MASK_OVERRIDES": [],
        "EVAL_OVERRIDES": ["max_images=2", "num_samples=2"],
        "TRAIN_OVERRIDES": QUICK_TRAINING,
        "WORK_DIR": "outputs",
    },
}


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The one cell tagged "parameters"."""
    (cell,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    return cell


def test_every_notebook_has_small_settings():
    assert NOTEBOOKS, "no notebooks found"
    assert {path.name for path in NOTEBOOKS} == set(SMALL_SETTINGS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_with_small_settings(path, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    settings = SMALL_SETTINGS[path.name]
    cell = parameters_cell(notebook)
    # every setting the notebook declares is replaced, so none slips through at full size
    declared = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
    assert declared == set(settings)
    cell.source = "\n".join(f"{name} = {value!r}" for name, value in settings.items())
    monkeypatch.setenv("INPAINTLAB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")
    NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    written = {p.name for p in tmp_path.glob("outputs/*/evaluation/*")}
    assert {"metrics.md", "metrics.csv", "samples.png", "per_bin.png"} <= written
    images = [
        o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 2

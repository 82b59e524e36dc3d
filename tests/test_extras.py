"""Optional installs: a task that needs a missing extra stops before it starts, with one line
naming the pip command that adds it."""

from __future__ import annotations

import os
import sys

import pytest

from inpaintlab.errors import EXTRAS, MissingExtraError, require_extra
from tests.conftest import run_script


def test_a_missing_module_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # what find_spec reports for a missing module
    with pytest.raises(MissingExtraError, match=r"pip install 'inpaintlab\[eval\]'") as error:
        require_extra("eval", "evaluation")
    assert "cv2" in str(error.value) and "matplotlib" not in str(error.value)


def test_every_extra_is_installed_for_the_tests():
    for extra in EXTRAS:
        require_extra(extra, "the test suite")


def without(tmp_path, *modules: str) -> dict[str, str]:
    """Environment variables under which `modules` cannot be imported (a sitecustomize hides
    them)."""
    hider = tmp_path / "hide_modules"
    hider.mkdir()
    lines = ["import sys", *(f"sys.modules[{name!r}] = None" for name in modules)]
    (hider / "sitecustomize.py").write_text("\n".join(lines) + "\n")
    return {"PYTHONPATH": os.pathsep.join([str(hider), os.environ.get("PYTHONPATH", "")])}


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return line


@pytest.mark.parametrize(
    ("hidden", "extra", "command"),
    [
        # checked before fitting, not after an hour of training
        (
            "cv2",
            "eval",
            ["train.py", "experiment=cpu_quality", "data.root=photos", "evaluate.mask.root=masks"],
        ),
        ("wandb", "wandb", ["train.py", "debug=fdr", "logger=wandb"]),
        ("cv2", "eval", ["eval.py", "methods=[telea]"]),
    ],
    ids=["train_then_evaluate", "wandb_logger", "eval"],
)
def test_a_task_without_its_extra_stops_before_writing_results(tmp_path, hidden, extra, command):
    run_dir = tmp_path / "run"
    script, *overrides = command
    result = run_script(
        script, *overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path, env=without(tmp_path, hidden)
    )
    assert f"pip install 'inpaintlab[{extra}]'" in one_error_line(result)
    assert not list(run_dir.rglob("*.ckpt")) and not list(run_dir.glob("metrics.*"))

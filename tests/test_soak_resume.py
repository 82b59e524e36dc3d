"""benchmarks/soak_resume.py: a run killed with SIGKILL at random moments (mid-step, during
validation, while a checkpoint is written) and resumed with ckpt_path=last after each kill
ends exactly where an uninterrupted run ends, with step checkpoints, for every variant."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.helpers import TINY_OVERRIDES

SOAK = ROOT / "benchmarks" / "soak_resume.py"


def soak(
    tmp_path, model: str, kills: int, *extra: str, max_delay: float = 1.0
) -> subprocess.CompletedProcess:
    overrides = [f"model={model}", *TINY_OVERRIDES[model], "data.image_size=32", *extra]
    overrides += ["model.ema_decay=0.99", f"paths.cache_dir={ROOT / '.cache'}"]
    command = [sys.executable, str(SOAK), "--kills", str(kills), "--max-delay", str(max_delay)]
    command += ["--keep", str(tmp_path), "--", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env)


def assert_identical(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "identical"
    assert any(line.startswith("kill 1:") for line in lines)  # at least one kill landed


def test_a_context_encoder_killed_and_resumed_ends_like_an_uninterrupted_run(tmp_path):
    assert_identical(soak(tmp_path, "context_encoder", kills=3))


def test_kills_right_after_each_step_checkpoint_resume_exactly(tmp_path):
    # each kill lands as soon as a new last.ckpt is in place
    assert_identical(soak(tmp_path, "context_encoder", kills=3, max_delay=0.0))


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(TINY_OVERRIDES))
def test_every_variant_survives_twenty_kills(tmp_path, model):
    # EdgeConnect's joint stage steps four optimisers a batch
    assert_identical(soak(tmp_path, model, kills=20))


@pytest.mark.slow
def test_two_process_ddp_survives_kills_of_the_whole_run(tmp_path):
    assert_identical(soak(tmp_path, "context_encoder", 10, "trainer=ddp_cpu"))

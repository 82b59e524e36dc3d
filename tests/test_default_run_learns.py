"""The default `make train` run learns something, and eval.py reads its best checkpoint."""

import csv
import json

import pytest
from conftest import run_script


@pytest.mark.slow
def test_default_training_improves_validation_psnr_and_evaluates(tmp_path):
    run_dir, eval_dir = tmp_path / "run", tmp_path / "eval"
    result = run_script("train.py", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = csv.DictReader((run_dir / "csv" / "metrics.csv").read_text().splitlines())
    psnr = [float(row["val/psnr/all"]) for row in rows if row.get("val/psnr/all")]
    assert len(psnr) == 20
    assert max(psnr) > psnr[0] + 1.0

    result = run_script(
        "eval.py",
        f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
        "metrics.lpips=false",
        "metrics.fid=false",
        f"hydra.run.dir={eval_dir}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    methods = json.loads((eval_dir / "metrics.json").read_text())["methods"]
    test_psnr = methods["run/best"]["bins"]["all"]["psnr"]
    assert 10 < test_psnr < 60

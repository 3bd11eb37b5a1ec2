"""Two real processes on loopback (torchrun, gloo) give the same weights as one process on the same global
batches in the same order."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

HELPERS = Path(__file__).resolve().parent / "helpers"
ROOT = Path(__file__).resolve().parents[2]


def test_two_processes_equal_one(tmp_path):
    sys.path.insert(0, str(HELPERS))
    try:
        import ddp_fit
    finally:
        sys.path.remove(str(HELPERS))
    single = tmp_path / "single.pt"
    result, world = ddp_fit.fit(str(single))
    assert world == 1
    double = tmp_path / "double.pt"
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(HELPERS / "ddp_fit.py"), str(double)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "world=2" in out.stdout and out.stdout.count("world=") == 1  # only rank 0 reports
    a = torch.load(single, weights_only=True)
    b = torch.load(double, weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=0)
    assert result.history["epochs"][-1]["val_acc"] > 0.6  # it learned, so equal weights mean equal training

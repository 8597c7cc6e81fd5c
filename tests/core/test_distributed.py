import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.core.toy import make_trainer

ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_ranks_match_single_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests/core/ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(r0, r1)
    single = make_trainer(steps=5, dropout=False)
    single.fit(resume=False)
    flat = torch.cat([p.detach().flatten() for p in single.model.parameters()])
    assert torch.allclose(r0, flat, atol=1e-5)
    assert not torch.allclose(flat, torch.cat([p.detach().flatten() for p in make_trainer(0).model.parameters()]))
    chosen = {(tmp_path / f"rank{r}.run_dir").read_text() for r in (0, 1)}    # the ranks share rank 0's run dir
    assert len(chosen) == 1 and [p.name for p in (tmp_path / "runs").iterdir()] == [Path(chosen.pop()).name]

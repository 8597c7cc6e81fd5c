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


def test_ranks_share_the_run_dir_rank0_chose(tmp_path, monkeypatch):
    import threading
    import time

    from ltm_gym.core import new_run_dir

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "launch-1")
    got = {}

    def rank(r):
        if r == 0:
            time.sleep(0.3)                           # the others ask first
        got[r] = new_run_dir("looped", 0, root=tmp_path, rank=r, world_size=3, timeout=10)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (1, 2, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got[0] == got[1] == got[2] and got[0].is_dir()
    assert [p for p in tmp_path.iterdir() if not p.name.startswith(".")] == [got[0]]

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import torch

from tests.core.toy import make_trainer

ROOT = Path(__file__).resolve().parents[2]


def launch(out: Path) -> subprocess.CompletedProcess:
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests/core/ddp_worker.py"), str(out)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_two_ranks_match_single_process(tmp_path):
    proc = launch(tmp_path / "first")
    aborted = re.search(r"exitcode\s*:\s*-6\b", proc.stderr) and not re.search(r"exitcode\s*:\s*[1-9]", proc.stderr)
    if proc.returncode != 0 and aborted:
        # a rank aborted inside gloo (C++ std::terminate, seen on a loaded machine), none exited with a
        # Python error of ours: launch once more, so a logic failure (which repeats) still fails
        warnings.warn(f"torchrun launch aborted in gloo, launched again:\n{proc.stderr[:2000]}")
        proc = launch(tmp_path / "again")
    log = f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[:3000]}\n...\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, log
    tmp_path = Path(proc.args[-1])
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(r0, r1)
    single = make_trainer(steps=5, dropout=False)
    single.fit(resume=False)
    flat = torch.cat([p.detach().flatten() for p in single.model.parameters()])
    assert torch.allclose(r0, flat, atol=1e-5)
    assert not torch.allclose(flat, torch.cat([p.detach().flatten() for p in make_trainer(0).model.parameters()]))
    chosen = {(tmp_path / f"rank{r}.run_dir").read_text() for r in (0, 1)}    # the ranks share rank 0's run dir
    assert len(chosen) == 1 and [p.name for p in (tmp_path / "runs").iterdir()] == [Path(chosen.pop()).name]

"""Run under ``torchrun --nproc_per_node=2``: choose a run directory, train the toy task, write each
rank's parameters and the run directory it got."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from ltm_gym.core import new_run_dir  # noqa: E402
from tests.core.toy import make_trainer  # noqa: E402

out = Path(sys.argv[1])
run_dir = new_run_dir("toy", 0, root=out / "runs", device="cpu")     # joins the process group
trainer = make_trainer(steps=5, dropout=False)
trainer.fit(resume=False)
flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
torch.save(flat, out / f"rank{trainer.dist.rank}.pt")
(out / f"rank{trainer.dist.rank}.run_dir").write_text(str(run_dir))
torch.distributed.barrier()                # no rank tears the group down while another still uses it
torch.distributed.destroy_process_group()

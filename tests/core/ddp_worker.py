"""Run under ``torchrun --nproc_per_node=2``: train the toy task, write each rank's parameters."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.core.toy import make_trainer  # noqa: E402

out = Path(sys.argv[1])
trainer = make_trainer(steps=5, dropout=False)
trainer.fit(resume=False)
flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
torch.save(flat, out / f"rank{trainer.dist.rank}.pt")
torch.distributed.destroy_process_group()

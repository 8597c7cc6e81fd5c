import pytest
import torch
from torch import nn

from ltm_gym.envs import MemoryLMBackend
from ltm_gym.lm import MemorySettings, build_llmltm
from ltm_gym.lm.study import StudyData
from tests.fixtures import tiny_study_config


@pytest.fixture(scope="session")
def study_data(tmp_path_factory):
    return StudyData(tiny_study_config(), tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def backend(study_data):
    cfg = tiny_study_config()
    model = build_llmltm(cfg.lm, study_data.tokenizer, seed=0)
    with torch.no_grad():  # make memory matter (the read path starts at zero)
        for r in model.readers:
            nn.init.normal_(r.o.weight, std=0.3)
    return MemoryLMBackend(model, study_data.splits, study_data.tokenizer, device="cpu")


class MemorySumLM(nn.Module):
    """A stand-in LLM-LTM whose every token loss is 2 + the mean of the memory: a known dependence."""

    def __init__(self, vocab=50, slots=4, dim=8, hidden=6):
        super().__init__()
        self.mem_cfg = MemorySettings(n_slots=slots, slot_dim=dim)
        self.hidden = hidden
        self.vocab_size = vocab
        self.lm = nn.Module()
        emb = nn.Embedding(vocab, hidden)
        self.lm.get_input_embeddings = lambda: emb
        self.lm.emb = emb

    def forward(self, ids, memory=None, context_ids=None):
        B, L = ids.shape
        shift = memory.mean((1, 2)) if memory is not None else torch.zeros(B)
        losses = 2.0 + shift[:, None].expand(B, L)
        logits = torch.zeros(B, L, self.vocab_size)
        return logits, losses

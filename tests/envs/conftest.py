import torch
from torch import nn

from ltm_gym.lm import MemorySettings


class MemorySumLM(nn.Module):
    """A stand-in LLM-LTM whose every token loss is 2 + the mean of the memory: a known dependence."""

    shares_trunk = False          # K candidates: one forward each

    def __init__(self, vocab=50, slots=4, dim=8, hidden=6):
        super().__init__()
        self.mem_cfg = MemorySettings(n_slots=slots, slot_dim=dim)
        self.hidden = hidden
        self.vocab_size = vocab
        self.lm = nn.Module()
        emb = nn.Embedding(vocab, hidden)
        self.lm.get_input_embeddings = lambda: emb
        self.lm.emb = emb

    def forward(self, ids, memory=None, context_ids=None, return_hidden=False):
        B, L = ids.shape
        shift = memory.mean((1, 2)) if memory is not None else torch.zeros(B)
        losses = 2.0 + shift[:, None].expand(B, L)
        logits = torch.zeros(B, L, self.vocab_size)
        if return_hidden:
            return logits, losses, torch.zeros(B, L, self.hidden)
        return logits, losses

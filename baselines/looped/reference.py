"""The public reference code's regression model, rebuilt at the paper's configuration (d = 20,
n_embd 256, 8 heads, b = 20 loops, T = 15): nanoGPT-style blocks with SDPA attention and the
tanh-GELU written out elementwise, all 2n tokens, fp32. ``scripts/bench_looped.py`` times it in
the same run as the package's model, and a test checks that both give the same predictions and
gradients for the same weights.
"""

from __future__ import annotations

import math

N_LOOPS, N_GRAD, N_EMBD, N_HEAD = 20, 15, 256, 8


def reference_model(kind: str):
    """The reference code's model, rebuilt: the same layers, order and arithmetic, fp32."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(N_EMBD), nn.LayerNorm(N_EMBD)
            self.c_attn, self.attn_proj = nn.Linear(N_EMBD, 3 * N_EMBD), nn.Linear(N_EMBD, N_EMBD)
            self.c_fc, self.mlp_proj = nn.Linear(N_EMBD, 4 * N_EMBD), nn.Linear(4 * N_EMBD, N_EMBD)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            B, T, C = x.shape
            q, k, v = (t.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2)
                       for t in self.c_attn(self.ln_1(x)).split(C, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))
            h = self.c_fc(self.ln_2(x))
            h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
            return x + self.mlp_proj(h)

    class ReferenceModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.read_in, self.read_out = nn.Linear(20, N_EMBD), nn.Linear(N_EMBD, 1)
            self.wpe = nn.Embedding(2 * 101 + 1, N_EMBD)
            self.blocks = nn.ModuleList(Block() for _ in range(12 if kind == "gpt2" else 1))
            self.ln_f = nn.LayerNorm(N_EMBD)

        def backbone(self, h: torch.Tensor) -> torch.Tensor:
            x = h + self.wpe(torch.arange(h.shape[1]))[None]
            for block in self.blocks:
                x = block(x)
            return self.ln_f(x)

        def forward(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
            B, n, d = xs.shape
            ys_wide = torch.cat([ys.view(B, n, 1), torch.zeros(B, n, d - 1)], dim=2)
            e = self.read_in(torch.stack((xs, ys_wide), dim=2).view(B, 2 * n, d))
            if kind == "gpt2":
                return self.read_out(self.backbone(e))[None, :, 0::2, 0]
            out, preds = torch.zeros_like(e), []
            for i in range(N_LOOPS):
                if i < N_LOOPS - N_GRAD:
                    with torch.no_grad():
                        out = self.backbone(out + e)
                else:
                    out = self.backbone(out + e)
                    preds.append(self.read_out(out)[:, 0::2, 0])
            return torch.stack(preds)

    return ReferenceModel()

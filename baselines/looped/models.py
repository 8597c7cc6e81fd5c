"""GPT-2 and looped transformers for in-context regression, in one compact file.

One pre-LayerNorm GPT-2 block (learned positions, causal attention through
``scaled_dot_product_attention``, tanh-GELU MLP) serves every model:

* ``gpt2``   L distinct blocks, one pass (the paper's baseline, L = 12);
* ``tied``   one block applied L times, no input injection (Universal-Transformer-like);
* ``looped`` one block looped with input injection: Y_0 = 0, Y_{t+1} = f(Y_t + E), where E is the
             read-in embedding and f re-adds the position embeddings, runs the block and ends in the
             final LayerNorm; a prediction is read out after every iteration;
* ``nlast``  like ``looped`` but only the N last output tokens are fed back, each at its own
             position (the others get E alone);
* ``ab``     two looped blocks: each iteration runs A then B, both with injection,
             Y_{t+1} = f_B(f_A(Y_t + E) + E); the read-out follows B.

Options on every looped kind: ``injection: ema`` replaces Y_t + E by a * Y_t + (1 - a) * E, and
``mixer: ssm`` swaps attention for a selective state-space mixer (:class:`SSMMixer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ltm_gym.core import check
from ltm_gym.core.errors import UserError

KINDS = ("gpt2", "tied", "looped", "nlast", "ab")
LOOPED_KINDS = ("looped", "nlast", "ab")


@dataclass
class ModelConfig:
    kind: Literal["gpt2", "tied", "looped", "nlast", "ab"] = "looped"
    n_dims: int = 20
    n_positions: int = 101
    """Maximum number of (x, y) pairs; the prompt has twice as many tokens."""
    n_embd: int = 256
    n_head: int = 8
    n_layer: int = 1
    """Blocks of ``gpt2``, repeats of ``tied``; the looped kinds use one block (two for ``ab``)."""
    mixer: Literal["attention", "ssm"] = "attention"
    ssm_state: int = 16
    injection: Literal["sum", "ema"] = "sum"
    ema_alpha: float = 0.5
    n_last: int = 20
    """Tokens fed back by ``nlast``."""
    dropout: float = 0.0
    checkpoint_loops: int = 0
    """Gradient-tracked loop iterations (the first ones) recomputed in backward instead of keeping
    their activations: each saves one iteration's activation memory for one more forward of it
    (0 = none; >= T = all, ~1/T of the memory for about a third more compute)."""

    def validate(self) -> None:
        check(self.n_dims >= 1, "n_dims", self.n_dims, ">= 1")
        check(self.n_positions >= 1, "n_positions", self.n_positions, ">= 1")
        check(self.n_embd % self.n_head == 0, "n_embd", self.n_embd, f"a multiple of n_head={self.n_head}")
        check(self.n_layer >= 1, "n_layer", self.n_layer, ">= 1")
        check(0 <= self.ema_alpha < 1, "ema_alpha", self.ema_alpha, "in [0, 1)")
        check(self.n_last >= 1, "n_last", self.n_last, ">= 1")
        check(self.ssm_state >= 1, "ssm_state", self.ssm_state, ">= 1")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "in [0, 1)")
        check(self.checkpoint_loops >= 0, "checkpoint_loops", self.checkpoint_loops, ">= 0")

    @property
    def looped(self) -> bool:
        return self.kind in LOOPED_KINDS


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.c_proj.residual = True  # type: ignore[attr-defined]
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = norm_linear(x, norm, self.c_attn).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        p = self.dropout if self.training else 0.0
        if x.device.type == "cpu" and p == 0.0:
            # At these short lengths explicit attention is ~2x faster than SDPA's CPU kernels
            # (forward + backward, fp32 and bf16), with the same result. One baddbmm scales the
            # scores and adds the causal mask inside the matmul.
            mask = torch.full((T, T), float("-inf"), dtype=q.dtype, device=x.device).triu(1)
            att = torch.baddbmm(mask, q.reshape(B * self.n_head, T, hs),
                                k.reshape(B * self.n_head, T, hs).transpose(1, 2), alpha=1.0 / math.sqrt(hs))
            y = (torch.softmax(att, dim=-1) @ v.reshape(B * self.n_head, T, hs)).view(B, self.n_head, T, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class SSMMixer(nn.Module):
    """A selective state-space mixer (scalar decay per head, Mamba-2 style), pure PyTorch.

    h_t = a_t h_{t-1} + dt_t B_t x_t^T,  y_t = C_t h_t + D x_t,  a_t = exp(-dt_t exp(A_log)),
    dt_t = softplus(...) > 0. It is computed in parallel as a causal (T x T) mixing matrix
    (C_t . B_s) * exp(sum_{r=s+1..t} log a_r): every exponent is <= 0, so nothing overflows,
    and the output is gated by SiLU(z). Cost is that of one attention call.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        C, self.H, self.N = cfg.n_embd, cfg.n_head, cfg.ssm_state
        self.in_proj = nn.Linear(C, 2 * C + 2 * self.H * self.N + self.H)
        self.c_proj = nn.Linear(C, C)
        self.c_proj.residual = True  # type: ignore[attr-defined]
        self.A_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, self.H)))
        self.dt_bias = nn.Parameter(torch.full((self.H,), math.log(math.expm1(0.05))))
        self.D = nn.Parameter(torch.ones(self.H))

    def forward(self, x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        B, T, C = x.shape
        H, N, P = self.H, self.N, C // self.H
        u, z, Bm, Cm, dt = norm_linear(x, norm, self.in_proj).split([C, C, H * N, H * N, H], dim=-1)
        u = u.view(B, T, H, P).transpose(1, 2)                                  # (B, H, T, P)
        Bm = Bm.view(B, T, H, N).transpose(1, 2)                                # (B, H, T, N)
        Cm = Cm.view(B, T, H, N).transpose(1, 2)                                # (B, H, T, N)
        dt = F.softplus(dt + self.dt_bias).transpose(1, 2)                      # (B, H, T)
        log_a = -dt * torch.exp(self.A_log)[None, :, None]                      # (B, H, T), <= 0
        cum = torch.cumsum(log_a, dim=-1)
        seg = cum[..., :, None] - cum[..., None, :]                             # (B, H, T, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        decay = torch.exp(seg.masked_fill(~causal, float("-inf")))
        mix = (Cm @ Bm.transpose(-1, -2)) * decay                               # (B, H, T, T)
        y = mix @ (u * dt[..., None]) + self.D[None, :, None, None] * u
        y = y.transpose(1, 2).reshape(B, T, C) * F.silu(z)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.c_proj.residual = True  # type: ignore[attr-defined]

    def forward(self, x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        return _GeluLinear.apply(norm_linear(x, norm, self.c_fc), self.c_proj.weight, self.c_proj.bias)


def norm_linear(x: torch.Tensor, norm: nn.LayerNorm, linear: nn.Linear) -> torch.Tensor:
    """linear(norm(x)), keeping only x for backward (see :class:`_NormLinear`)."""
    return _NormLinear.apply(x, norm.weight, norm.bias, linear.weight, linear.bias, norm.eps)


class _NormLinear(torch.autograd.Function):
    """linear(layer_norm(x)) that keeps x, not the normalized copy, for backward.

    The normalized input of the linear layer is recomputed in backward (one elementwise pass)
    instead of being stored for every block call. Under autocast it follows autocast's rules (the
    norm in float32, the linear layer in the autocast dtype), so values and gradients equal the
    unfused modules'.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, norm_w: torch.Tensor, norm_b: torch.Tensor, w: torch.Tensor,  # type: ignore[override]
                b: torch.Tensor, eps: float) -> torch.Tensor:
        dev = x.device.type
        low = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None
        with torch.autocast(dev, enabled=False):
            xin = x.float() if low is not None else x
            xn, mean, rstd = torch.native_layer_norm(xin, norm_w.shape, norm_w, norm_b, eps)
            dt = low or xn.dtype
            out = F.linear(xn.to(dt), w.to(dt), b.to(dt))
        ctx.save_for_backward(xin, mean, rstd, norm_w, norm_b, w)
        ctx.meta = (eps, dt, x.dtype, b.dtype)
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        xin, mean, rstd, norm_w, norm_b, w = ctx.saved_tensors
        eps, dt, x_dtype, b_dtype = ctx.meta  # dt: the linear layer's compute dtype
        xn = torch.native_layer_norm(xin, norm_w.shape, norm_w, norm_b, eps)[0].to(dt)
        grad_xn, grad_w, grad_b = _linear_backward(g, xn, w, b_dtype)
        grad_x, grad_nw, grad_nb = torch.ops.aten.native_layer_norm_backward(
            grad_xn.to(xin.dtype), xin, norm_w.shape, mean, rstd, norm_w, norm_b, [True, True, True])
        return grad_x.to(x_dtype), grad_nw, grad_nb, grad_w, grad_b, None


def _linear_backward(g: torch.Tensor, inp: torch.Tensor, w: torch.Tensor, b_dtype: torch.dtype):
    """Gradients of linear(inp, w, b) for the output gradient ``g``, in ``inp``'s dtype:
    (input, weight, bias), the weight and bias ones in their parameters' dtypes."""
    g = g.to(inp.dtype)
    g2 = g.reshape(-1, g.shape[-1])
    grad_w = (g2.t() @ inp.reshape(-1, inp.shape[-1])).to(w.dtype)
    return g @ w.to(g.dtype), grad_w, g2.sum(0).to(b_dtype)


class _GeluLinear(torch.autograd.Function):
    """linear(gelu_tanh(u), w, b) that keeps only u for backward and recomputes the GELU.

    Saves the 4x-wide GELU output of every block call: a quarter of the activation memory of a
    looped run, for an elementwise recomputation.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u, w)
        ctx.b_dtype = b.dtype
        h = F.gelu(u, approximate="tanh")
        return F.linear(h, w.to(h.dtype), b.to(h.dtype))

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        u, w = ctx.saved_tensors
        grad_h, grad_w, grad_b = _linear_backward(g, F.gelu(u, approximate="tanh"), w, ctx.b_dtype)
        return torch.ops.aten.gelu_backward(grad_h, u, approximate="tanh"), grad_w, grad_b


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.mix = SSMMixer(cfg) if cfg.mixer == "ssm" else CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mix(x, self.ln_1)
        return x + self.mlp(x, self.ln_2)


class Backbone(nn.Module):
    """Position embeddings + blocks (each run ``repeat`` times in order) + final LayerNorm."""

    def __init__(self, cfg: ModelConfig, n_blocks: int, repeat: int = 1) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(n_blocks))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.repeat = repeat

    def forward(self, h: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        h = h + pos
        for _ in range(self.repeat):
            for block in self.blocks:
                h = block(h)
        return self.ln_f(h)


class RegressionTransformer(nn.Module):
    """Reads a prompt [x_1, y_1, x_2, y_2, ...] and predicts y_i at every x_i position."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.read_in = nn.Linear(cfg.n_dims, cfg.n_embd)
        self.wpe = nn.Embedding(2 * cfg.n_positions, cfg.n_embd)
        if cfg.kind == "gpt2":
            units = [Backbone(cfg, cfg.n_layer)]
        elif cfg.kind == "tied":
            units = [Backbone(cfg, 1, repeat=cfg.n_layer)]
        elif cfg.kind == "ab":
            units = [Backbone(cfg, 1), Backbone(cfg, 1)]
        else:
            units = [Backbone(cfg, 1)]
        self.units = nn.ModuleList(units)
        self.read_out = nn.Linear(cfg.n_embd, 1)
        depth = cfg.n_layer if cfg.kind in ("gpt2", "tied") else len(units)
        # GPT-2 init inside the backbone only: read-in and read-out keep PyTorch's default, as in the
        # public code. With N(0, 0.02) the injected input is ~25x smaller than the unit-variance
        # loop state, and a looped model stays at the zero predictor for thousands of steps.
        for part in (self.wpe, self.units):
            part.apply(lambda m: _init(m, depth))

    @staticmethod
    def combine(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Interleave into (B, 2n, d) tokens: x_i, then (y_i, 0, ..., 0)."""
        B, n, d = xs.shape
        zs = xs.new_zeros(B, 2 * n, d)
        zs[:, 0::2] = xs
        zs[:, 1::2, 0] = ys
        return zs

    def _read(self, h: torch.Tensor) -> torch.Tensor:
        return self.read_out(h[:, 0::2])[..., 0]                                # (B, n), at the x tokens

    def _iterate(self, y: torch.Tensor, e: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """One loop iteration Y_t -> Y_{t+1}."""
        cfg = self.cfg
        if cfg.kind == "nlast":
            keep = torch.zeros(e.shape[1], 1, dtype=e.dtype, device=e.device)
            keep[-cfg.n_last:] = 1
            y = y * keep
        for unit in self.units:
            if cfg.injection == "ema":
                y = unit(cfg.ema_alpha * y + (1 - cfg.ema_alpha) * e, pos)
            else:
                y = unit(y + e, pos)
        return y

    def forward(self, xs: torch.Tensor, ys: torch.Tensor, n_loops: int = 1,
                n_grad: int | None = None) -> torch.Tensor:
        """Predictions (K, B, n): the last ``n_grad`` loop iterations (K = 1 for gpt2/tied).

        The first ``n_loops - n_grad`` iterations run without gradient (truncated backprop);
        ``n_grad=None`` reads out every iteration.
        """
        # The last token (y_n) can reach no read-out through causal attention: leave it out.
        e = self.read_in(self.combine(xs, ys)[:, :-1])
        pos = self.wpe.weight[: e.shape[1]]
        if not self.cfg.looped:
            return self._read(self.units[0](e, pos))[None]
        if n_loops < 1:
            raise UserError(f"n_loops={n_loops} must be >= 1")
        n_grad = n_loops if n_grad is None else min(n_grad, n_loops)
        y = torch.zeros_like(e)
        with torch.no_grad():
            for _ in range(n_loops - n_grad):
                y = self._iterate(y, e, pos)
        preds = []
        for i in range(n_grad):
            if i < self.cfg.checkpoint_loops and torch.is_grad_enabled():
                y = checkpoint(self._iterate, y, e, pos, use_reentrant=False)
            else:
                y = self._iterate(y, e, pos)
            preds.append(self._read(y))
        return torch.stack(preds)


def _init(module: nn.Module, depth: int) -> None:
    """GPT-2 init: N(0, 0.02), zero biases, residual projections N(0, 0.02 / sqrt(2 depth))."""
    if isinstance(module, nn.Linear):
        std = 0.02 / math.sqrt(2 * depth) if getattr(module, "residual", False) else 0.02
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)


LOSSES = ("mse", "mae", "huber")


def regression_loss(preds: torch.Tensor, ys: torch.Tensor, kind: str = "mse", delta: float = 1.0) -> torch.Tensor:
    """Mean loss over the read-outs (K), the batch and every position: the whole T window."""
    target = ys.expand_as(preds)
    if kind == "mse":
        return F.mse_loss(preds, target)
    if kind == "mae":
        return F.l1_loss(preds, target)
    if kind == "huber":
        return F.huber_loss(preds, target, delta=delta)
    raise UserError(f"loss {kind!r} is not one of {LOSSES}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

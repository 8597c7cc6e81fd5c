"""The study's memory model: a segment encoder, and 10 memory slots that attend to the segment and
to the previous memory, giving a Gaussian mean and std per slot.

:class:`ObservationEncoder` turns an LLMMemory observation into token features (segment tokens
embedded, never fed as raw numbers; or the LM's pooled hidden state) plus the previous memory; in
select mode also how each slot matches the codes of the segment's positions (:func:`code_matches`)
and each slot's place in memory: a selection writes the new positions first and the kept slots
after them in their old order, so a slot's index tells how long it has been kept.
:class:`MemoryWriter` is the policy network of REINFORCE and of the differentiable writer;
the SB3 features extractor reuses the encoder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from ltm_gym.lm.memory import slot_windows
from ltm_gym.core.errors import UserError

LOG_STD_MIN, LOG_STD_MAX = math.log(0.02), 0.0  # the original agent's std range, about [0.02, 1]


@dataclass
class WriterConfig:
    d_model: int = 64
    n_head: int = 4
    n_layers: int = 1
    max_tokens: int = 1024
    local_window: int = 0
    """Tokens (this one and the ones before it) mixed into each token's features by a causal
    convolution before the transformer, so a position sees its left context, e.g. that it
    follows "remember : KEY", from the first update; 0 or 1: none."""
    window_tokens: int = 0
    """Select mode with a study whose codes spell their windows: > 0 (the study's ``code_context``
    + 1) scores every candidate, a segment position and a kept slot alike, from the tokens of the
    window it spells, through one network: a slot's score is its window's as a position's, plus
    what only kept slots have (their place, their match with the segment, ``keep_prior``), so that a
    slot kept long cannot outscore a new fact the same window text would lose to. 0: positions
    from the segment encoder, slots from their vectors."""

    def validate(self) -> None:
        if self.d_model % self.n_head:
            raise UserError(f"d_model={self.d_model} is not a multiple of n_head={self.n_head}")
        if self.local_window < 0:
            raise UserError(f"local_window={self.local_window} is negative; use 0 for none")
        if self.window_tokens < 0:
            raise UserError(f"window_tokens={self.window_tokens} is negative; use 0 for none")


def check_window_tokens(env: Any, window_tokens: int, option: str = "writer.window_tokens") -> None:
    """``window_tokens`` (the ``option`` that set it) must be the width of the windows the env's
    selection codes spell."""
    if not window_tokens:
        return
    mem = getattr(getattr(getattr(env, "backend", None), "model", None), "mem_cfg", None)
    if mem is None or not mem.spells:
        raise UserError(f"{option}={window_tokens}: the study's selection codes do not spell their "
                        "windows (memory.spelled or read_path: tokens); use 0")
    if window_tokens != mem.window_width:
        raise UserError(f"{option}={window_tokens}: the study's codes spell windows of "
                        f"{mem.window_width} tokens (code_context + 1); use {mem.window_width}")


def code_matches(memory: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How well each slot of ``memory`` (B, m, d) matches the segment's ``codes`` (B, L, d), and
    each position the memory: (B, m, 2) and (B, L, 2), the best cosine similarity and whether an
    exact match exists. A slot whose fact the segment asks again matches exactly (a question's
    VALUE has its statement's code): the cue for evicting it once answered. Empty slots match 0."""
    unit_m = memory / memory.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    unit_c = codes / codes.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    sim = unit_m @ unit_c.transpose(1, 2)                                         # (B, m, L)
    exact = (sim > 1 - 1e-5).float()
    for_slots = torch.stack([sim.amax(2), exact.amax(2)], dim=-1)
    for_positions = torch.stack([sim.amax(1), exact.amax(1)], dim=-1)
    return for_slots, for_positions


class ZeroLinear(nn.Linear):
    """A linear layer that starts at zero (the model starts as without it) and draws no random
    numbers, so adding it leaves the initialization of every other layer unchanged."""

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)


class ObservationEncoder(nn.Module):
    """Observation -> context features (B, T, d) and previous memory (B, m, slot_dim)."""

    def __init__(self, observation_space: spaces.Dict, cfg: WriterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        mem = observation_space["memory"]
        self.n_slots, self.slot_dim = mem.shape
        self.tokens = "tokens" in observation_space.spaces
        d = cfg.d_model
        if self.tokens:
            vocab = int(observation_space["tokens"].high.max()) + 1
            self.embed = nn.Embedding(vocab, d)
            if not cfg.window_tokens:    # (scoring windows reads no segment encoder)
                self.pos = nn.Embedding(cfg.max_tokens, d)
                w = cfg.local_window
                self.local = nn.Conv1d(d, d, w, padding=w - 1) if w > 1 else None
                layer = nn.TransformerEncoderLayer(d, cfg.n_head, 4 * d, dropout=0.0, batch_first=True,
                                                   norm_first=True)
                self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        else:
            self.hidden_in = nn.Sequential(nn.Linear(observation_space["hidden"].shape[0], d), nn.Tanh())
        self.memory_in = nn.Linear(self.slot_dim, d)
        self.codes = "codes" in observation_space.spaces
        if self.codes:   # select mode: how slots match the segment's codes, and each slot's place (its age)
            self.slot_match, self.position_match = ZeroLinear(2, d), ZeroLinear(2, d)
            self.slot_order = nn.Parameter(torch.zeros(observation_space["memory"].shape[0], d))
        self.window_tokens = cfg.window_tokens
        if self.window_tokens:
            if not (self.tokens and self.codes):
                raise UserError(f"window_tokens={cfg.window_tokens} scores the windows that select-mode codes "
                                "spell (action_mode='select', obs_mode='tokens'); use 0")
            self.window_in = nn.Sequential(nn.Linear(self.window_tokens * d, d), nn.GELU(), nn.Linear(d, d))

    def token_features(self, ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, L, d), plus the causal local mix of the ``local_window`` - 1 before."""
        x = self.embed(ids)
        if self.local is not None:                                                # drop the right padding
            x = x + self.local(x.transpose(1, 2))[..., : ids.shape[1]].transpose(1, 2)
        return x

    def window_ids(self, spelled: torch.Tensor) -> torch.Tensor:
        """The ``window_tokens`` token ids (B, n, w) that codes or slots (B, n, d) spell."""
        return slot_windows(spelled, self.window_tokens - 1, self.embed.num_embeddings)[0]

    def window_features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features (B, L + m, d) of every candidate's spelled window, positions then slots."""
        ids = torch.cat([self.window_ids(obs["codes"].float()), self.window_ids(obs["memory"].float())], dim=1)
        return self.window_in(self.embed(ids).flatten(-2))

    def forward(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        memory = obs["memory"].float()
        if self.window_tokens:
            for_slots, for_positions = code_matches(memory, obs["codes"].float())
            feats, L = self.window_features(obs), obs["codes"].shape[1]
            seg = feats[:, :L] + self.position_match(for_positions)
            slots = feats[:, L:] + self.slot_match(for_slots) + self.slot_order
            return torch.cat([seg, slots], dim=1), memory
        if self.tokens:
            ids = obs["tokens"].long()
            pos = torch.arange(ids.shape[1], device=ids.device)
            seg = self.encoder(self.token_features(ids) + self.pos(pos))          # (B, L, d)
        else:
            seg = self.hidden_in(obs["hidden"].float())[:, None]                  # (B, 1, d)
        slots = self.memory_in(memory)
        if self.codes:
            for_slots, for_positions = code_matches(memory, obs["codes"].float())
            slots = slots + self.slot_match(for_slots) + self.slot_order
            if self.tokens:
                seg = seg + self.position_match(for_positions)
        context = torch.cat([seg, slots], dim=1)                                  # (B, L + m, d)
        return context, memory


class MemoryWriter(nn.Module):
    """Slots attend to [segment; previous memory] -> per-slot Gaussian (mean, log_std) and a value."""

    def __init__(self, observation_space: spaces.Dict, cfg: WriterConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or WriterConfig()
        self.encoder = ObservationEncoder(observation_space, cfg)
        d, m, k = cfg.d_model, self.encoder.n_slots, self.encoder.slot_dim
        self.slot_queries = nn.Parameter(torch.randn(m, d) * 0.02)
        self.prev_slot = nn.Linear(k, d)
        self.attn = nn.MultiheadAttention(d, cfg.n_head, batch_first=True)
        self.ln = nn.LayerNorm(d)
        self.mean = nn.Linear(d, k)
        self.log_std = nn.Linear(d, k)
        self.value = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1))
        nn.init.zeros_(self.mean.bias)
        nn.init.constant_(self.log_std.bias, -1.0)

    def forward(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """mean (B, m, k) of the pre-tanh Gaussian, log_std (B, m, k) in the allowed range, value (B,)."""
        context, memory = self.encoder(obs)
        q = self.slot_queries[None] + self.prev_slot(memory)                     # (B, m, d)
        h, _ = self.attn(q, context, context, need_weights=False)
        h = self.ln(h + q)
        log_std = LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN) * torch.sigmoid(self.log_std(h))
        return self.mean(h), log_std, self.value(h.mean(1)).squeeze(-1)


def squashed_sample(mean: torch.Tensor, log_std: torch.Tensor, deterministic: bool = False,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Action tanh(u), u ~ N(mean, std), inside [-1, 1], and its log-probability (B,)."""
    if deterministic:
        u = mean
    else:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device) if generator is not None \
            else torch.randn_like(mean)
        u = mean + log_std.exp() * noise
    return torch.tanh(u), squashed_log_prob(u, mean, log_std)


def squashed_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log p(tanh(u)) summed over all action dimensions (change of variables through tanh)."""
    normal = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    jac = 2 * (math.log(2) - u - F.softplus(-2 * u))                              # log(1 - tanh(u)^2)
    return (normal - jac).flatten(1).sum(1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of the pre-tanh Gaussian, summed over dimensions (B,)."""
    return (log_std + 0.5 * math.log(2 * math.pi * math.e)).flatten(1).sum(1)


EMPTY_SLOT_LOGIT = -1.0e4
"""The logit of keeping an empty slot (the env never keeps one while anything else is left): finite,
so that softmax entropies and Plackett-Luce log-probabilities stay finite."""


class SelectionScorer(nn.Module):
    """Per-candidate logits for ``action_mode="select"``: the encoder's features of every segment
    position and of every previous slot (in the action's order) -> one logit each (B, L + m), plus
    a learned prior per token (which tokens are worth storing) and one for keeping a slot (an empty
    slot's keep logit is :data:`EMPTY_SLOT_LOGIT`: the env does not keep one).
    Never pooled: the logit of position p is computed from position p's own features.

    Starts near uniform, but not at exactly zero weights: a zero output layer would pass no
    gradient to the encoder, and the sparse reward would take long to break the symmetry."""

    def __init__(self, observation_space: spaces.Dict, cfg: WriterConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or WriterConfig()
        self.encoder = ObservationEncoder(observation_space, cfg)
        if not self.encoder.tokens:
            raise UserError("the selection policy reads token observations (obs_mode='tokens')")
        self.logit = nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, 1))
        with torch.no_grad():
            self.logit[1].weight.mul_(0.1)
            self.logit[1].bias.zero_()
        self.token_prior = nn.Embedding(self.encoder.embed.num_embeddings, 1)
        nn.init.zeros_(self.token_prior.weight)
        self.keep_prior = nn.Parameter(torch.zeros(()))

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        context, _ = self.encoder(obs)                                            # (B, L + m, d)
        logits = self.logit(context).squeeze(-1)
        empty = (obs["memory"] == 0).all(-1)                                     # never written: nothing to keep
        keep = torch.where(empty, torch.full_like(empty, EMPTY_SLOT_LOGIT, dtype=logits.dtype),
                           self.keep_prior.to(logits.dtype).expand(*empty.shape))
        prior = self.token_prior(obs["tokens"].long()).squeeze(-1).to(logits.dtype)
        if self.encoder.window_tokens:          # a slot's window ends at the token it was stored at
            last = self.encoder.window_ids(obs["memory"].float())[..., -1]
            keep = keep + torch.where(empty, 0.0, self.token_prior(last).squeeze(-1).to(logits.dtype))
        return logits + torch.cat([prior, keep], dim=1)

import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.networks import ObservationEncoder, WriterConfig


def obs_space(L: int = 12, vocab: int = 50) -> spaces.Dict:
    return spaces.Dict({"tokens": spaces.Box(0, vocab - 1, (L,), np.int64),
                        "memory": spaces.Box(-1, 1, (4, 8), np.float32)})


@pytest.mark.parametrize("window", [3, 4])
def test_local_window_mixes_exactly_the_tokens_before(window):
    torch.manual_seed(0)
    enc = ObservationEncoder(obs_space(), WriterConfig(d_model=16, n_head=2, local_window=window))
    ids = torch.randint(0, 50, (1, 12))
    other = ids.clone()
    other[0, 5] = (ids[0, 5] + 1) % 50
    changed = (enc.token_features(ids) - enc.token_features(other)).abs().sum(-1)[0] > 0
    assert changed.tolist() == [5 <= p < 5 + window for p in range(12)]    # causal, `window` wide


def test_no_local_window_is_plain_embedding():
    enc = ObservationEncoder(obs_space(), WriterConfig(d_model=16, n_head=2))
    ids = torch.randint(0, 50, (2, 12))
    assert enc.local is None and torch.equal(enc.token_features(ids), enc.embed(ids))
    with pytest.raises(ValueError, match="local_window=-1"):
        WriterConfig(local_window=-1).validate()

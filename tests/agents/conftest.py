import pytest
import torch

from ltm_gym.envs import MemoryLMBackend
from ltm_gym.lm import build_llmltm
from ltm_gym.lm.study import StudyData
from tests.fixtures import tiny_study_config


@pytest.fixture(scope="session")
def backend(tmp_path_factory):
    cfg = tiny_study_config()
    data = StudyData(cfg, tmp_path_factory.mktemp("cache"))
    model = build_llmltm(cfg.lm, data.tokenizer, seed=0)
    with torch.no_grad():
        for r in model.readers:
            torch.nn.init.normal_(r.o.weight, std=0.3)
    return MemoryLMBackend(model, data.splits, data.tokenizer, device="cpu")

"""Test-wide settings: never touch the network; small, deterministic CPU runs."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Under pytest-xdist (`make test` runs one worker per core) each worker computes on one thread, and
# so do the subprocesses it starts: two workers with two threads each would fight for the cores.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, (os.cpu_count() or 2) // WORKERS) if WORKERS > 1 else 2
if WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = str(THREADS)

import torch  # noqa: E402

torch.set_num_threads(THREADS)

import pytest  # noqa: E402
from torch import nn  # noqa: E402

from tests.fixtures import tiny_study_config  # noqa: E402


@pytest.fixture(scope="session")
def study_data(tmp_path_factory):
    """The tests' synthetic corpus and tokenizer (built once)."""
    from ltm_gym.study import StudyData

    return StudyData(tiny_study_config(), tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
    """A whole (tiny, briefly trained) study directory: LM, LoRA baseline, memory LM."""
    from ltm_gym.study import StudyDir
    from ltm_gym.study.stages import run_stage, stages_for

    study = StudyDir(tmp_path_factory.mktemp("studies") / "tiny", tiny_study_config())
    for stage in stages_for(study):
        run_stage(stage, study)
    return study


@pytest.fixture
def default_study(tiny_study, monkeypatch):
    """``tiny_study`` as the default study (``$LTM_GYM_STUDY_DIR``): a bare gym.make finds it."""
    from ltm_gym.study import ENV_VAR

    monkeypatch.setenv(ENV_VAR, str(tiny_study.root))
    return tiny_study


@pytest.fixture(scope="session")
def backend(study_data):
    """An untrained tiny LLM-LTM whose memory matters (the read path starts at zero otherwise)."""
    from ltm_gym.envs import MemoryLMBackend
    from ltm_gym.lm import build_llmltm

    model = build_llmltm(tiny_study_config().lm, study_data.tokenizer, seed=0)
    with torch.no_grad():
        for r in model.readers:
            nn.init.normal_(r.o.weight, std=0.3)
    return MemoryLMBackend(model, study_data.splits, study_data.tokenizer, device="cpu")

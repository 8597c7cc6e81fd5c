"""The LLM-LTM study: its directory layout (:class:`StudyDir`, the one owner of the artifact
names), its config, the LM stages, the tables and the plots.

Composes ``data`` and ``lm``; the envs load a study through :class:`StudyDir`. The end-to-end
pipeline, which also runs the agents and the differentiable writer, is ``ltm_gym.pipeline``.
"""

from .config import (MemoryStageConfig, PretrainConfig, SelectStageConfig, StageConfig, StudyConfig,
                     load_study_config)
from .layout import ADAPTER_FILES, ENV_VAR, StudyData, StudyDir, StudyNotFoundError, default_study_dir

__all__ = ["ADAPTER_FILES", "ENV_VAR", "MemoryStageConfig", "PretrainConfig", "SelectStageConfig", "StageConfig",
           "StudyConfig", "StudyData", "StudyDir", "StudyNotFoundError", "default_study_dir", "load_study_config"]

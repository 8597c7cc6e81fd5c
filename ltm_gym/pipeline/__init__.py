"""The study's orchestration: LM stages, agents and references run end to end (``make demo``).

It composes ``ltm_gym.study``, ``ltm_gym.agents`` and ``ltm_gym.baselines``, so it sits above them
all; only the commands import it.
"""

from .study import PipelineSettings, run_pipeline, set_aside

__all__ = ["PipelineSettings", "run_pipeline", "set_aside"]

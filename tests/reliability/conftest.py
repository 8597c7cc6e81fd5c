from tests.looped.conftest import tiny_cfg  # noqa: F401  (the looped study's few-second config)

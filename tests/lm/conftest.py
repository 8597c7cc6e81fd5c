import pytest

from ltm_gym.lm.study import StudyData
from tests.fixtures import tiny_study_config


@pytest.fixture(scope="session")
def study_data(tmp_path_factory):
    return StudyData(tiny_study_config(), tmp_path_factory.mktemp("cache"))

import pytest

from ltm_gym.core import ConfigError
from ltm_gym.study import ENV_VAR, StudyDir, StudyNotFoundError, default_study_dir
from tests.fixtures import tiny_study_config


def test_default_location_does_not_depend_on_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert default_study_dir() == tmp_path / "cache" / "ltm_gym" / "study-tiny"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine"))
    assert StudyDir().root == tmp_path / "mine"


def test_missing_study_and_artifacts_are_named(tmp_path):
    with pytest.raises(StudyNotFoundError, match=f"{tmp_path / 'nope'} holds no study"):
        StudyDir(tmp_path / "nope").config
    study = StudyDir(tmp_path / "s", tiny_study_config()).create()
    with pytest.raises(StudyNotFoundError, match="lm is missing"):
        study.load_lm("memory")
    model = study.load_lm("memory", untrained=True)               # only when asked for
    assert model.mem_cfg.n_slots == 4
    with pytest.raises(ValueError, match="'nope'"):
        study.adapter_file("nope")


def test_a_study_with_another_config_is_refused_before_anything_is_written(tmp_path):
    StudyDir(tmp_path / "s", tiny_study_config()).create()
    before = (tmp_path / "s" / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="another config"):
        StudyDir(tmp_path / "s", tiny_study_config(seed=3)).create()
    assert (tmp_path / "s" / "config.yaml").read_text() == before
    assert StudyDir(tmp_path / "s").config.seed == 0


def test_the_steps_of_an_unfinished_stage_may_change(tmp_path):
    StudyDir(tmp_path / "s", tiny_study_config()).create()
    steps = StudyDir(tmp_path / "s").config.select.train.steps
    StudyDir(tmp_path / "s", tiny_study_config(select={"train": {"steps": steps + 7}})).create()
    assert StudyDir(tmp_path / "s").config.select.train.steps == steps + 7
    (tmp_path / "s" / "select_lm.safetensors").write_bytes(b"")          # the stage is done: no longer
    with pytest.raises(ConfigError, match="select.train.steps"):
        StudyDir(tmp_path / "s", tiny_study_config(select={"train": {"steps": 3}})).create()
    with pytest.raises(ConfigError, match="lora.train.lr"):              # nothing but the steps
        StudyDir(tmp_path / "s", tiny_study_config(select={"train": {"steps": steps + 7}},
                                                   lora={"train": {"steps": 5, "lr": 1.0}})).create()
    assert StudyDir(tmp_path / "s").config.select.train.steps == steps + 7


def test_loading_a_study_lm_is_quiet(tiny_study, capfd):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # a FutureWarning from peft/transformers fails here
        tiny_study.load_lm("memory")
    err = capfd.readouterr().err
    assert "Loading weights" not in err and err.strip() == ""


def test_the_corpus_is_built_once_per_process(tmp_path):
    from ltm_gym.study import StudyData

    cache = tmp_path / "cache"
    a = StudyDir(tmp_path / "a", tiny_study_config())
    b = StudyDir(tmp_path / "b", tiny_study_config(lora={"batch_size": 2}))   # same corpus, another study
    assert StudyData.shared(a.config, cache) is StudyData.shared(b.config, cache)
    other = tiny_study_config(corpus={"synthetic": {"n_documents": 30}})
    data = StudyData.shared(other, cache)
    assert data is not StudyData.shared(a.config, cache)
    assert sum(len(v) for v in data.splits.values()) == 30
    assert StudyDir(tmp_path / "c", tiny_study_config()).data is StudyDir(tmp_path / "c", tiny_study_config()).data
    assert StudyDir(tmp_path / "c", tiny_study_config()).data is not StudyDir(tmp_path / "d", tiny_study_config()).data

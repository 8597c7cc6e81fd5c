"""The default study shipped inside the package: the tiny preset's, complete, reproducing the table
rows recorded when it was built, and the start of the default study directory."""

import gymnasium as gym
import pytest

import ltm_gym  # noqa: F401  (registers the envs)
from ltm_gym.core import ConfigError
from ltm_gym.study import ENV_VAR, StudyDir
from ltm_gym.study.layout import REFERENCE_FILE, SHIPPED_DIR, SHIPPED_FILES, from_scratch_study, shipped_study_dir
from ltm_gym.study.shipped import check_shippable, ship, shipped_reference
from tests.fixtures import tiny_study_config


@pytest.fixture
def empty_default(tmp_path, monkeypatch):
    """The default study directory where it holds nothing yet, and a current directory elsewhere."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    return tmp_path / "cache" / "ltm_gym" / "study-tiny"


def test_the_package_ships_a_finished_study_of_the_tiny_preset():
    assert shipped_study_dir() == SHIPPED_DIR
    check_shippable(StudyDir(SHIPPED_DIR))                       # the tiny preset's config, every artifact
    size = sum(p.stat().st_size for p in SHIPPED_DIR.rglob("*") if p.is_file())
    assert size < 16 * 2**20


def test_the_shipped_study_reproduces_its_recorded_rows(tmp_path):
    recorded = shipped_reference()
    assert {"lora_baseline", "oracle", "prev_segment_memory"} <= set(recorded)
    assert recorded["oracle"]["recall_acc"] > recorded["lora_baseline"]["recall_acc"] + 0.5
    rows = ship(StudyDir(SHIPPED_DIR), tmp_path / "copy")         # recomputes every row from the shipped files
    assert set(rows) == set(recorded)
    for name, summary in recorded.items():
        for key, value in summary.items():
            assert rows[name][key] == pytest.approx(value, abs=1e-4), (name, key)
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == sorted([*SHIPPED_FILES, REFERENCE_FILE])
    assert StudyDir(tmp_path / "copy").identity()["fingerprint"] == StudyDir(SHIPPED_DIR).identity()["fingerprint"]


def test_a_bare_gym_make_starts_from_the_shipped_study(empty_default):
    env = gym.make("ltm_gym/LLMMemory-v0")
    obs, _ = env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert obs["memory"].shape == (10, 64) and reward < 0
    assert StudyDir(empty_default).identity()["fingerprint"] == StudyDir(SHIPPED_DIR).identity()["fingerprint"]
    assert not list(empty_default.parent.glob(".*shipped"))       # no staging left behind


def test_from_scratch_and_other_configs_do_not_start_from_the_shipped_study(empty_default):
    assert not StudyDir(shipped=False).exists()
    assert not StudyDir(config=tiny_study_config()).exists()      # another config: nothing copied
    assert not empty_default.exists()
    assert from_scratch_study(None).config.lm.base == "tiny"
    StudyDir()                                                    # now the copy is made
    with pytest.raises(ConfigError, match="already holds a study"):
        from_scratch_study(None)


def test_only_a_finished_study_of_a_shipped_preset_is_shipped(tiny_study, tmp_path):
    with pytest.raises(ConfigError, match="is a study of 'test'; the package ships studies of tiny, babi-tiny"):
        ship(tiny_study, tmp_path / "dest")
    renamed = StudyDir(tmp_path / "renamed", tiny_study_config(name="tiny"))
    renamed.create()
    with pytest.raises(ConfigError, match="not a study of the 'tiny' preset"):
        ship(renamed, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("name", ["babi-tiny", "babi-spelled"])
def test_the_babi_studies_ship_and_study_dir_names_them(name, tmp_path, monkeypatch):
    """study_dir=babi-tiny (or babi-spelled): a shipped bAbI study, copied to the user's cache when first used."""
    from ltm_gym.study.layout import SHIPPED_STUDIES
    from ltm_gym.study.shipped import study_files

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    source = shipped_study_dir(name)
    assert source == SHIPPED_STUDIES[name] and check_shippable(StudyDir(source)) == name
    env = gym.make("ltm_gym/LLMMemory-v0", study_dir=name, task={"name": "babi-qa1-1k", "n_eval": 2},
                   split="test", action_mode="select", adapters="select", reward_mode="answer", device="cpu")
    assert env.unwrapped.backend.reader_on_answers            # its reader was trained on answers: co-training goes on so
    env.reset(seed=0)
    rewards, done = [], False
    while not done:
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        rewards.append(reward)
        done = terminated or truncated
    assert len(rewards) == 15 and rewards[-1] < 0 == rewards[0]
    copied = tmp_path / "cache" / "ltm_gym" / f"study-{name}"
    assert StudyDir(copied).identity("select")["fingerprint"] == StudyDir(source).identity("select")["fingerprint"]
    assert sorted(p.name for p in copied.iterdir()) == sorted([*study_files(StudyDir(source)), REFERENCE_FILE])
    recorded = shipped_reference(source)                          # ship's recompute is tested on the tiny study
    assert {"lora_baseline", "oracle"} <= set(recorded)
    assert ("prev_segment_memory" in recorded) == StudyDir(source).adapter_file("memory").is_file()
    assert StudyDir(source).config.lm.memory.spelled == (name == "babi-spelled")

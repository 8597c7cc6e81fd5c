"""Study recipes: the settings a study's agents were tuned with, filled in where a command leaves them out."""

import pytest
import yaml

from ltm_gym.agents import recipes
from ltm_gym.agents.recipes import Recipe, apply_recipe, study_recipe
from ltm_gym.core import ConfigError, load_config
from tests.fixtures import load_script

RECIPE = Recipe(study="test", tasks="babi-", steps=48, env={"spacing": 3, "task": {"questions": 4}},
                agents={"reinforce": {"keep_prior": 0.5, "writer": {"window_tokens": 6}}})


def test_a_recipe_fills_in_only_what_the_command_left_out():
    env = {"task": "babi-qa1-1k", "action_mode": "select", "spacing": 0}
    preset = {"keep_prior": 2.0, "lr": 1e-3, "writer": {"d_model": 64, "window_tokens": 0}}
    given = {"keep_prior": 1.0}
    out = apply_recipe(RECIPE, "reinforce", env, {**preset, **given}, given, None)
    assert out.env_kwargs == {"task": {"name": "babi-qa1-1k", "questions": 4}, "action_mode": "select", "spacing": 0}
    assert out.hyperparams == {"keep_prior": 1.0, "lr": 1e-3, "writer": {"d_model": 64, "window_tokens": 6}}
    assert out.steps == 48
    assert out.added == ["task.questions=4", "--steps 48", "--set writer.window_tokens=6"]
    assert apply_recipe(RECIPE, "ppo", env, preset, {}, 96).steps == 96          # --steps given wins
    assert apply_recipe(RECIPE, "ppo", env, preset, {}, 96).hyperparams == preset  # no ppo part: its preset


def test_a_recipe_is_for_its_action_mode_and_tasks_only():
    assert RECIPE.applies({"task": "babi-qa2-4k", "action_mode": "select"})
    assert RECIPE.applies({"task": {"name": "babi-qa1-1k", "tokens": 3000}, "action_mode": "select"})
    assert not RECIPE.applies({"task": "babi-qa1-1k", "action_mode": "full"})
    assert not RECIPE.applies({"task": "recall-d4", "action_mode": "select"})
    assert not RECIPE.applies({"action_mode": "select"})                          # the study's own corpus


def test_the_shipped_recipe_loads_and_refuses_an_unknown_algorithm(tmp_path):
    shipped = load_config(Recipe, recipes.preset_dir() / "recipes" / "babi-tiny.yaml")
    assert shipped.study == "babi-tiny" and shipped.env["spacing"] == 5
    assert shipped.agents["reinforce"]["writer"]["window_tokens"] == 6
    bad = tmp_path / "r.yaml"
    bad.write_text("study: x\ntasks: babi-\nagents: {reinfroce: {lr: 1}}\n")
    with pytest.raises(ConfigError, match="reinfroce"):
        load_config(Recipe, bad)
    bad.write_text("study: x\ntasks: babi-\naction_mode: selct\n")
    with pytest.raises(ConfigError, match="selct"):
        load_config(Recipe, bad)


def test_the_shipped_babi_study_has_a_recipe_and_the_default_none(tmp_path):
    study = tmp_path / "s"
    study.mkdir()
    (study / "config.yaml").write_text("name: babi-tiny\n")
    kwargs = {"study_dir": str(study), "task": "babi-qa1-1k", "action_mode": "select"}
    assert study_recipe(kwargs).study == "babi-tiny"
    assert study_recipe({**kwargs, "task": "recall-d1"}) is None
    (study / "config.yaml").write_text("name: tiny\n")
    assert study_recipe(kwargs) is None


@pytest.fixture
def test_recipe(tmp_path, monkeypatch):
    """A recipe for the tests' study (named ``test``) in a preset directory of its own."""
    (tmp_path / "presets" / "recipes").mkdir(parents=True)
    (tmp_path / "presets" / "recipes" / "test.yaml").write_text(yaml.safe_dump(
        {"study": "test", "tasks": "babi-", "steps": 12, "env": {"spacing": 2, "task": {"questions": 2}},
         "agents": {"reinforce": {"keep_prior": 0.5}}}))
    monkeypatch.setattr(recipes, "preset_dir", lambda: tmp_path / "presets")


def test_train_agent_applies_the_recipe_says_so_and_leaves_it_out_on_request(tiny_study, tmp_path, capsys, test_recipe):
    env = ["--env-kwargs", f"study_dir={tiny_study.root}", "action_mode=select", "device=cpu", "task=babi-qa1-1k",
           "task.tokens=512", "task.n_documents=8", "task.n_eval=2"]
    common = ["--algo", "reinforce", "--num-envs", "4", "--device", "cpu", "--set", "writer.d_model=16",
              "--set", "writer.n_head=2"]
    main = load_script("train_agent").main
    main([*common, "--run-dir", str(tmp_path / "a"), *env])
    cfg = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())
    assert cfg["env_kwargs"]["spacing"] == 2 and cfg["env_kwargs"]["task"]["questions"] == 2
    assert cfg["hyperparams"]["keep_prior"] == 0.5 and cfg["steps"] == 12
    assert "recipe of study test" in capsys.readouterr().out
    main([*common, "--run-dir", str(tmp_path / "b"), "--no-recipe", "--steps", "8", *env])
    cfg = yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())
    assert cfg["env_kwargs"].get("spacing") is None and cfg["hyperparams"]["keep_prior"] == 2.0 and cfg["steps"] == 8
    assert "recipe" not in capsys.readouterr().out

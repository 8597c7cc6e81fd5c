"""scripts/train_agent.py: which preset a run gets."""

import yaml

from tests.fixtures import load_script


def test_train_agent_picks_the_action_modes_preset_and_merges_overrides(tiny_study, tmp_path, capsys):
    """``--algo ppo`` on a selection env runs agents/ppo-select; ``--set`` of one nested key keeps
    the preset's other keys."""
    run = tmp_path / "run"
    load_script("train_agent").main(["--algo", "ppo", "--steps", "16", "--num-envs", "2", "--device", "cpu",
                                     "--set", "n_steps=8", "--set", "batch_size=16", "--set", "features.d_model=16",
                                     "--set", "features.n_head=2", "--run-dir", str(run),
                                     "--env-kwargs", f"study_dir={tiny_study.root}", "action_mode=select", "device=cpu"])
    hyper = yaml.safe_load((run / "config.yaml").read_text())["hyperparams"]
    assert hyper["binary_select"] is True and hyper["candidate_head"] is True and hyper["n_steps"] == 8
    assert hyper["features"] == {"d_model": 16, "n_head": 2, "n_layers": 1, "per_position": 8, "local_window": 4}
    out = capsys.readouterr().out
    assert "(16 env steps)" in out and "note:" not in out              # 2 envs x n_steps 8: one whole rollout


def test_a_run_longer_than_asked_says_so(tiny_study, tmp_path, capsys):
    run = tmp_path / "run"
    load_script("train_agent").main(["--algo", "ppo", "--steps", "10", "--num-envs", "2", "--device", "cpu",
                                     "--set", "n_steps=8", "--set", "batch_size=16", "--set", "features.d_model=16",
                                     "--set", "features.n_head=2", "--run-dir", str(run),
                                     "--env-kwargs", f"study_dir={tiny_study.root}", "action_mode=select", "device=cpu"])
    out = capsys.readouterr().out
    assert "ppo: 16 env steps an update (2 envs x n_steps 8): this run ends at 16 env steps" in out
    assert out.index("this run ends at") < out.index("(16 env steps)")                 # said before, done after
    load_script("train_agent").main(["--algo", "reinforce", "--steps", "10", "--num-envs", "4", "--device", "cpu",
                                     "--set", "writer.d_model=16", "--set", "writer.n_head=2",
                                     "--run-dir", str(tmp_path / "rf"), "--env-kwargs",
                                     f"study_dir={tiny_study.root}", "action_mode=select", "device=cpu"])
    out = capsys.readouterr().out
    steps = 4 * (tiny_study.config.corpus.synthetic.n_segments - 1)                     # whole episodes of 4 envs
    assert f"reinforce: {steps} env steps an update (whole episodes of {steps // 4} steps in 4 envs)" in out
    end = -(-10 // steps) * steps
    assert f"this run ends at {end} env steps" in out and f"({end} env steps)" in out and "note:" not in out

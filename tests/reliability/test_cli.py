"""User mistakes at the command line: one line ``error: ...`` naming the bad value, exit code 2,
and nothing written or overwritten; ``--debug`` shows the traceback; bugs keep theirs."""

import pytest
import yaml

from ltm_gym.core import ConfigError, UserError, run_main, to_dict
from tests.fixtures import load_script, tiny_study_config


def fails(script: str, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        run_main(load_script(script).main, argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_run_main_reports_input_errors_and_keeps_bug_tracebacks(capsys):
    def bad_input(argv):
        raise UserError("config key 'x' has value 3; allowed: 1 or 2")

    def bug(argv):
        raise TypeError("unsupported operand")

    def shape_bug(argv):                        # a ValueError from deep in a library is a bug too
        import numpy as np

        np.zeros(3).reshape(2, 2)

    with pytest.raises(SystemExit):
        run_main(bad_input, [])
    assert capsys.readouterr().err.startswith("error: config key 'x' has value 3; allowed: 1 or 2")
    with pytest.raises(UserError):
        run_main(bad_input, ["--debug"])
    with pytest.raises(TypeError):
        run_main(bug, [])
    with pytest.raises(ValueError, match="reshape"):
        run_main(shape_bug, [])
    assert issubclass(ConfigError, UserError) and issubclass(UserError, ValueError)   # Python callers catch ValueError


@pytest.mark.parametrize("body, code, stderr", [
    ("print('done', end='')", 0, ""),
    ("from ltm_gym.core import UserError; raise UserError('bad value 3')", 2, "error: bad value 3"),
    ("raise SystemExit(130)", 130, ""),
    ("raise TypeError('a bug')", 1, "TypeError: a bug"),
])
def test_a_torchrun_rank_exits_with_its_code_and_flushed_output(body, code, stderr):
    """A rank (WORLD_SIZE > 1 in its environment) ends through ``os._exit``: its code, its
    buffered output and its error line or traceback survive."""
    import os
    import subprocess
    import sys

    from tests.fixtures import ROOT

    script = f"from ltm_gym.core import run_main\ndef main(argv):\n    {body}\nrun_main(main, [])\n"
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == code, out.stderr
    assert out.stdout == ("done" if code == 0 else "")
    assert stderr in out.stderr


def test_looped_run_dirs(tiny_cfg, tmp_path, capsys):
    from ltm_gym.baselines.looped.study import train

    cfg_file = tmp_path / "looped.yaml"
    cfg_file.write_text(yaml.safe_dump(to_dict(tiny_cfg)))
    assert "--resume needs --run-dir" in fails("train_looped", ["--resume"], capsys)
    assert "does not exist; nothing to resume" in fails("train_looped", ["--run-dir", str(tmp_path / "nope"), "--resume"], capsys)
    (tmp_path / "empty").mkdir()
    assert "holds no run" in fails("train_looped", ["--run-dir", str(tmp_path / "empty"), "--resume"], capsys)
    run = tmp_path / "run"
    train(tiny_cfg, run)
    config, ckpt = (run / "config.yaml").read_bytes(), (run / "checkpoint.pt").read_bytes()
    line = fails("train_looped", ["--config", str(cfg_file), "--run-dir", str(run), "--set", "model.kind=ab"], capsys)
    assert "already holds a run" in line and "--resume" in line
    line = fails("train_looped", ["--run-dir", str(run), "--resume", "--set", "model.kind=ab"], capsys)
    assert "--set model.kind=ab with --resume" in line
    assert (run / "config.yaml").read_bytes() == config and (run / "checkpoint.pt").read_bytes() == ckpt
    assert "'model.kind'" in fails("train_looped", ["--config", str(cfg_file), "--set", "model.kind=zzz",
                                                    "--run-dir", str(tmp_path / "new")], capsys)
    assert not (tmp_path / "new").exists()


def test_agent_run_mistakes_leave_nothing_behind(tiny_study, tmp_path, capsys):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    env = ["--env-kwargs", f"study_dir={tiny_study.root}", "device=cpu"]
    run = tmp_path / "run"
    line = fails("train_agent", ["--algo", "ppo", "--set", "n_steps=abc", "--run-dir", str(run), *env], capsys)
    assert "'n_steps' has value 'abc'; allowed: an integer" in line
    assert not run.exists()
    line = fails("train_agent", ["--algo", "ppo", "--set", "n_step=8", "--run-dir", str(run), *env], capsys)
    assert "'n_step'" in line and "n_steps" in line and not run.exists()
    writer = tmp_path / "writer.pt"
    writer.write_bytes(b"")
    line = fails("train_agent", ["--algo", "ppo", "--init-from", str(writer), "--run-dir", str(run), *env], capsys)
    assert str(writer) in line and not run.exists()
    assert "no such file" in fails("train_agent", ["--init-from", str(tmp_path / "nope.pt"), *env], capsys)
    assert "holds no run" in fails("train_agent", ["--run-dir", str(tmp_path), "--resume"], capsys)
    assert f"{writer} is a file" in fails("train_agent", ["--run-dir", str(writer), *env], capsys)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "config.yaml").write_text("")
    line = fails("evaluate_agent", ["--run-dir", str(damaged)], capsys)
    assert "config.yaml is not a readable run config" in line and "empty" in line


def test_agent_resume_keeps_its_config(tiny_study, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--steps", "8", "--num-envs", "2", "--device", "cpu", "--set", "n_steps=2", "--set", "group_size=2",
            "--set", "writer.d_model=16",
            "--set", "writer.n_head=2", "--run-dir", str(run), "--env-kwargs", f"study_dir={tiny_study.root}",
            "device=cpu"]
    run_main(load_script("train_agent").main, args)
    capsys.readouterr()
    config = (run / "config.yaml").read_bytes()
    assert "already holds a run" in fails("train_agent", args, capsys)
    line = fails("train_agent", ["--run-dir", str(run), "--resume", "--set", "lr=1"], capsys)
    assert "--set lr=1 with --resume" in line
    assert "--seed with --resume" in fails("train_agent", ["--run-dir", str(run), "--resume", "--see", "3"], capsys)
    assert (run / "config.yaml").read_bytes() == config


def test_a_study_refuses_another_config(tiny_study, tmp_path, capsys):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    before = tiny_study.config_file.read_bytes()
    line = fails("pretrain_lm", ["--config", str(cfg), "--study-dir", str(tiny_study.root),
                                 "--set", "pretrain.train.steps=40"], capsys)
    assert str(tiny_study.root) in line and "pretrain.train.steps: 4 -> 40)" in line
    assert tiny_study.config_file.read_bytes() == before


def test_env_arguments_and_steps_are_checked_before_anything_is_written(tmp_path, capsys):
    run = tmp_path / "run"
    line = fails("train_agent", ["--run-dir", str(run), "--env-kwargs", "reward_mod=answer"], capsys)
    assert "'reward_mod'" in line and "did you mean 'reward_mode'?" in line
    line = fails("train_agent", ["--run-dir", str(run), "--steps", "-5"], capsys)
    assert "--steps -5" in line
    assert not run.exists()


def test_a_bad_split_or_reward_mode_is_named_when_the_env_is_made(backend):
    from ltm_gym.envs import LLMMemoryEnv

    with pytest.raises(ValueError, match="split 'nope' has no documents"):
        LLMMemoryEnv(backend=backend, split="nope")                 # at construction, not at reset
    with pytest.raises(ValueError, match="'reward_mode' has value 'bogus'"):
        LLMMemoryEnv(backend=backend, reward_mode="bogus")


def test_eval_looped_writes_its_own_folder_and_labels_its_rows(tiny_cfg, tmp_path, capsys):
    from ltm_gym.baselines.looped.study import evaluate, train

    run = tmp_path / "run"
    model = train(tiny_cfg, run)
    evaluate(tiny_cfg, model, run / "eval")
    before = {p.name: p.read_bytes() for p in (run / "eval").iterdir()}
    run_main(load_script("eval_looped").main, ["--run-dir", str(run), "--n-loops", "40"])
    out = capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in (run / "eval").iterdir()} == before      # training's own eval/ kept
    assert (run / "eval_looped" / "error_vs_loops.csv").is_file()
    lines = out.splitlines()
    examples = lines.index(next(l for l in lines if l.strip().startswith("in-context examples")))
    assert "least_squares" in lines[examples] and lines[examples + 1].split()[0] == "0"
    loops = lines.index(next(l for l in lines if l.strip().startswith("loop iteration")))
    numbers = [int(l.split()[0]) for l in lines[loops + 1:] if l.strip() and l.split()[0].isdigit()]
    assert numbers[0] == 1 and numbers[-1] == 40 and numbers == sorted(numbers)


def test_env_argument_types_are_checked_before_anything_is_written(backend, tmp_path, capsys):
    from ltm_gym.envs import LLMMemoryEnv, LLMMemoryVectorEnv

    run = tmp_path / "run"
    for given, named in (("k=abc", "'k' has value 'abc'; allowed: an integer"),
                         ("lm_update=maybe", "'lm_update' has value 'maybe'; allowed: true or false"),
                         ("action_scale=big", "'action_scale' has value 'big'; allowed: a number")):
        assert named in fails("train_agent", ["--run-dir", str(run), "--env-kwargs", given], capsys)
        assert not run.exists()
    with pytest.raises(ValueError, match="'k' has value '4'; allowed: an integer"):
        LLMMemoryEnv(backend=backend, k="4")
    with pytest.raises(ValueError, match="'lm_update' has value 1; allowed: true or false"):
        LLMMemoryVectorEnv(2, backend=backend, lm_update=1)
    assert LLMMemoryEnv(backend=backend, action_scale=2, max_segments=None).episodes.s.action_scale == 2


def test_evaluate_lm_on_a_missing_study_is_an_input_error(tmp_path, capsys):
    line = fails("evaluate_lm", ["--study-dir", str(tmp_path / "nostudy")], capsys)
    assert str(tmp_path / "nostudy") in line and "pretrain_lm.py" in line

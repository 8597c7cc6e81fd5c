"""A run directory is one run's: locked while a run uses it (a second run into it is refused, a
dead holder's lock taken over), and a run pins the study it trained on (path and fingerprint):
resuming or evaluating it on another study is refused, naming both."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from ltm_gym.core import RunInUseError, lock_run_dir, run_main, unlock_run_dir
from tests.fixtures import ROOT, load_script

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
HOLD = "import sys, time; from ltm_gym.core import lock_run_dir; lock_run_dir(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_a_locked_run_dir_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUseError, match=f"in use by another run \\(process {holder.pid}\\)"):
            lock_run_dir(run)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / ".lock.owner").read_text().strip() == str(holder.pid)        # the dead holder's file is left
    assert lock_run_dir(run) is True                                     # and taken over
    assert (run / ".lock.owner").read_text().strip() == str(os.getpid())
    assert lock_run_dir(run) is False                                    # held by this process already
    unlock_run_dir(run)


def test_two_agent_runs_started_at_once_into_one_run_dir(tiny_study, tmp_path):
    run = tmp_path / "run"
    common = ["--steps", "400", "--num-envs", "2", "--device", "cpu", "--set", "group_size=2", "--set", "writer.d_model=16",
              "--set", "writer.n_head=2", "--run-dir", str(run), "--env-kwargs", f"study_dir={tiny_study.root}",
              "device=cpu"]
    procs = [subprocess.Popen([sys.executable, str(ROOT / "scripts/train_agent.py"), *common, "--seed", str(seed)],
                              cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], (codes, [o[1][-1500:] for o in outs])
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    err = outs[loser][1]
    assert ("in use by another run (process" in err or "already holds a run" in err), err
    assert "Traceback" not in err and "TensorBoard" not in outs[loser][0]
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == winner
    assert len(list((run / "tb").glob("events.*"))) == 1


def test_a_run_pins_its_study(tiny_study, tmp_path, monkeypatch, capsys):
    from ltm_gym.study import ENV_VAR

    monkeypatch.setenv(ENV_VAR, str(tiny_study.root))                    # the default study, as a user has it
    run = tmp_path / "run"
    args = ["--steps", "8", "--num-envs", "2", "--device", "cpu", "--set", "group_size=2", "--set", "writer.d_model=16",
            "--set", "writer.n_head=2", "--run-dir", str(run), "--env-kwargs", "device=cpu"]
    run_main(load_script("train_agent").main, args)
    recorded = yaml.safe_load((run / "config.yaml").read_text())["study"]
    assert recorded["path"] == str(tiny_study.root.resolve()) and len(recorded["fingerprint"]) == 16

    copy = tmp_path / "same study elsewhere"
    shutil.copytree(tiny_study.root, copy)
    monkeypatch.setenv(ENV_VAR, str(copy))                               # a copy is the same study
    run_main(load_script("evaluate_agent").main, ["--run-dir", str(run), "--no-lm-rows"])
    run_main(load_script("evaluate_agent").main, ["--run-dir", str(run), "--no-lm-rows", "--split", "validation"])
    assert {p.name for p in (run / "eval").glob("agent_table*.json")} == {"agent_table.json",
                                                                          "agent_table_validation.json"}
    capsys.readouterr()

    (copy / "memory_lm.safetensors").write_bytes((copy / "lora_baseline.safetensors").read_bytes())
    agent = (run / "agent.pt").read_bytes()
    shutil.rmtree(run / "eval")
    for script, argv in (("evaluate_agent", ["--run-dir", str(run)]),
                         ("train_agent", ["--run-dir", str(run), "--resume", "--steps", "16"])):
        with pytest.raises(SystemExit) as exit_:
            run_main(load_script(script).main, argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2, err
        assert str(tiny_study.root.resolve()) in err and str(copy.resolve()) in err and recorded["fingerprint"] in err
    assert (run / "agent.pt").read_bytes() == agent and not (run / "eval").exists()


def test_a_relative_study_dir_is_stored_absolute(tiny_study, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tiny_study.root.parent)
    run = tmp_path / "run"
    run_main(load_script("train_agent").main,
             ["--steps", "4", "--num-envs", "2", "--device", "cpu", "--set", "group_size=2", "--set", "writer.d_model=16",
              "--set", "writer.n_head=2", "--run-dir", str(run), "--env-kwargs", f"study_dir={tiny_study.root.name}",
              "device=cpu"])
    assert yaml.safe_load((run / "config.yaml").read_text())["env_kwargs"]["study_dir"] == str(tiny_study.root.resolve())
    out = capsys.readouterr().out
    assert f"TensorBoard:   tensorboard --logdir {run}" in out

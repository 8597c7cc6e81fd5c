import json
import re
import subprocess
import sys
import time

import pytest
import yaml

from ltm_gym.core import to_dict
from tests.fixtures import ROOT, load_script, tiny_study_config


def test_study_pipeline_small_and_cached(tmp_path, capsys):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    study = tmp_path / "study"
    d2, mix = tmp_path / "d2.yaml", tmp_path / "mix.yaml"
    d2.write_text(yaml.safe_dump({"name": "d2", "distance": 2, "n_segments": 6, "n_facts": 1, "n_documents": 15}))
    mix.write_text(yaml.safe_dump({"name": "mix", "distance": 1, "max_distance": 2, "n_segments": 6, "n_facts": 1,
                                   "n_distractors": 1, "n_documents": 15}))
    args = ["--config", str(cfg), "--study-dir", str(study), "--agent-steps", "8", "--mimic-steps", "8",
            "--select-steps", "8", "--num-envs", "4", "--bptt-steps", "2", "--imitate-steps", "4",
            "--ladder", str(d2), str(mix), "--ladder-steps", "8", "--ladder-agents", str(d2), str(mix)]
    run_study = load_script("run_study")
    run_study.main(args)
    out = capsys.readouterr().out
    for row in ("lora_baseline", "oracle", "prev_segment_memory", "agent_reinforce ", "agent_reinforce_pretrained",
                "agent_reinforce_select", "agent_reinforce_select_cotrained", "bptt_writer"):
        assert f"| {row.strip()} |" in out
    assert "no recall gap" in out                         # an LM trained for 4 steps copies nothing: it says so
    ladder = out[out.index("### d2"):]                    # the ladder's tables end the report
    assert "### mix" in ladder
    for row in ("lora_baseline", "oracle", "store[select]", "fifo[select]", "unasked[select]", "patient[select]",
                "keep[select]", "agent_ladder_d2", "agent_ladder_mix", "agent_ladder_d2_frozen", "writer_ladder_d2"):
        assert ladder.count(f"| {row} |") == 2, row
    writer = yaml.safe_load((study / "agents/ladder_d2_writer/config.yaml").read_text())
    assert writer["tbptt"] == 6 and writer["task"] == str(d2)            # through whole documents
    frozen = yaml.safe_load((study / "agents/ladder_d2_frozen/config.yaml").read_text())["env_kwargs"]
    assert frozen["adapters"] == "select" and not frozen.get("lm_update")
    chained = yaml.safe_load((study / "agents/ladder_mix/config.yaml").read_text())
    assert chained["init_from"].endswith("ladder_d2/agent.pt")
    assert chained["env_kwargs"]["adapters"].endswith("ladder_d2/reader.safetensors")
    for f in ("eval/lm_table.csv", "plots/validation_loss.png", "plots/agent_reward.png", "plots/position_loss.png",
              "lm/model.safetensors", "agents/mimic/agent.pt", "agents/reinforce_pretrained/agent.pt",
              "select_lm.safetensors", "agents/reinforce_select_cotrained/reader.safetensors",
              "bptt/writer.pt", "bptt/reader.safetensors"):
        assert (study / f).is_file(), f
    mimic = yaml.safe_load((study / "agents/mimic/config.yaml").read_text())
    assert mimic["env_id"] == "ltm_gym/EmbeddingMimic-v0" and "reward_mode" not in mimic["env_kwargs"]   # trains on d_{t-1} - d_t
    cloned = yaml.safe_load((study / "agents/reinforce/config.yaml").read_text())["hyperparams"]
    pretrained = yaml.safe_load((study / "agents/reinforce_pretrained/config.yaml").read_text())["hyperparams"]
    assert cloned["imitate_steps"] == 4 and pretrained.get("imitate_steps", 0) == 0   # hypothesis 1 starts from mimic
    pretrained_env = yaml.safe_load((study / "agents/reinforce_pretrained/config.yaml").read_text())["env_kwargs"]
    assert pretrained_env["lm_update"] is True and pretrained_env["lm_lr"] == 3e-4   # its reader co-trained
    table = json.loads((study / "eval/lm_table.json").read_text())
    assert 0 <= table["agent_reinforce"]["recall_acc"] <= 1
    stamp = (study / "lm/model.safetensors").stat().st_mtime
    run_study.main(args)                                   # second run: every stage is reused
    assert (study / "lm/model.safetensors").stat().st_mtime == stamp
    assert re.search(r"resumed at \d+ env steps", capsys.readouterr().out)


@pytest.mark.slow
def test_killed_study_resumes_without_rerunning_finished_work(tmp_path):
    """SIGKILL in the middle of LM pre-training, then run again: it continues from the checkpoint."""
    cfg = tmp_path / "study.yaml"
    study_cfg = tiny_study_config(pretrain={"train": {"steps": 160, "ckpt_every": 10, "log_every": 1,
                                                      "device": "cpu", "progress": False}})
    cfg.write_text(yaml.safe_dump(to_dict(study_cfg)))
    study = tmp_path / "study"
    args = ["--config", str(cfg), "--study-dir", str(study), "--agent-steps", "8", "--mimic-steps", "8",
            "--select-steps", "8", "--num-envs", "4", "--bptt-steps", "2", "--imitate-steps", "4", "--ladder"]
    ckpt = study / "stages" / "pretrain" / "checkpoint.pt"
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_study.py"), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not ckpt.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert ckpt.is_file() and not (study / "lm").exists()        # killed mid-stage: no artifact yet
    log = study / "stages" / "pretrain" / "metrics.jsonl"
    done = max(json.loads(r)["step"] for r in log.read_text().splitlines())
    assert 0 < done < 160
    load_script("run_study").main(args)
    steps = [json.loads(r)["step"] for r in log.read_text().splitlines() if '"train"' in r]
    assert steps == sorted(steps) and steps[-1] == 160          # continued, not restarted
    assert len(steps) == len(set(steps))
    assert (study / "lm" / "model.safetensors").is_file() and (study / "eval" / "lm_table.csv").is_file()

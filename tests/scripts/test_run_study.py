import json
import re

import yaml

from ltm_gym.core import to_dict
from tests.fixtures import load_script, tiny_study_config


def test_study_pipeline_small_and_cached(tmp_path, capsys):
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_study_config())))
    study = tmp_path / "study"
    args = ["--config", str(cfg), "--study-dir", str(study), "--agent-steps", "8", "--mimic-steps", "8",
            "--num-envs", "2", "--bptt-steps", "2"]
    run_study = load_script("run_study")
    run_study.main(args)
    out = capsys.readouterr().out
    for row in ("lora_baseline", "oracle", "prev_segment_memory", "agent_reinforce ", "agent_reinforce_pretrained",
                "bptt_writer"):
        assert f"| {row.strip()} |" in out
    for f in ("eval/lm_table.csv", "plots/validation_loss.png", "plots/agent_reward.png", "plots/position_loss.png",
              "lm/model.safetensors", "agents/mimic/agent.pt", "agents/reinforce_pretrained/agent.pt",
              "bptt/writer.pt", "bptt/reader.safetensors"):
        assert (study / f).is_file(), f
    table = json.loads((study / "eval/lm_table.json").read_text())
    assert 0 <= table["agent_reinforce"]["recall_acc"] <= 1
    stamp = (study / "lm/model.safetensors").stat().st_mtime
    run_study.main(args)                                   # second run: every stage is reused
    assert (study / "lm/model.safetensors").stat().st_mtime == stamp
    assert re.search(r"resumed at \d+ env steps", capsys.readouterr().out)

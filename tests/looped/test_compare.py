import json

import pytest
import yaml

from ltm_gym.core import ConfigError, to_dict
from tests.fixtures import load_script


def presets(tiny_cfg, tmp_path):
    looped, gpt2 = tmp_path / "looped.yaml", tmp_path / "gpt2.yaml"
    looped.write_text(yaml.safe_dump(to_dict(tiny_cfg)))
    g = to_dict(tiny_cfg)
    g["model"].update(kind="gpt2", n_layer=2)
    g["curriculum"]["loops"] = {"start": 1, "end": 1}
    gpt2.write_text(yaml.safe_dump(g))
    return ["--looped", str(looped), "--gpt2", str(gpt2), "--no-progress", "--set", "eval.n_prompts=64"]


def test_looped_vs_gpt2_figure_and_table(tiny_cfg, tmp_path, capsys):
    compare = load_script("compare_looped")
    args = presets(tiny_cfg, tmp_path) + ["--out", str(tmp_path / "out")]
    compare.main(args)
    out = capsys.readouterr().out
    for row in ("| looped-s0 |", "| gpt2-s0 |", "| least_squares |", "| knn3 |", "| averaging |"):
        assert row in out
    assert "k = 3 | k = 6" in out                                             # d = 3, 2d = 6, last = 6
    data = json.loads((tmp_path / "out/comparison.json").read_text())
    assert len(data["looped-s0"]["loop_curve"]) == 10 * tiny_cfg.b and data["gpt2-s0"]["loop_curve"] is None
    assert len(data["least_squares"]["error_vs_examples"]) == tiny_cfg.eval.n_points
    assert data["least_squares"]["error_vs_examples"][4] < 1e-6               # k > d: exact
    assert (tmp_path / "out/comparison.png").stat().st_size > 0
    mtime = (tmp_path / "out/looped-s0/checkpoint.pt").stat().st_mtime
    compare.main(args)                                                         # finished runs are reused
    assert (tmp_path / "out/looped-s0/checkpoint.pt").stat().st_mtime == mtime
    with pytest.raises(ConfigError, match="another config"):
        compare.main(args + ["--set", "train.lr=0.01"])


def test_variants_table(tiny_cfg, tmp_path, capsys):
    load_script("compare_looped").main(presets(tiny_cfg, tmp_path) + ["--variants", "looped", "ema", "mae",
                                                                        "--out", str(tmp_path / "v")])
    out = capsys.readouterr().out
    assert "| ema-s0 |" in out and "| mae-s0 |" in out
    assert yaml.safe_load((tmp_path / "v/ema-s0/config.yaml").read_text())["model"]["injection"] == "ema"
    assert yaml.safe_load((tmp_path / "v/mae-s0/config.yaml").read_text())["loss"] == "mae"

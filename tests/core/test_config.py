from dataclasses import dataclass, field

import pytest

from ltm_gym.core import ConfigError, TrainConfig, check, from_dict, load_config, to_dict


@dataclass
class Inner:
    n: int = 2


@dataclass
class Outer:
    name: str = "x"
    train: TrainConfig = field(default_factory=TrainConfig)
    inner: Inner = field(default_factory=Inner)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"'train.lrr'.*known keys: .*lr"):
        from_dict(Outer, {"train": {"lrr": 1e-3}})


def test_negative_lr_is_named():
    with pytest.raises(ConfigError, match=r"'lr' has value -0.1; allowed: > 0"):
        from_dict(Outer, {"train": {"lr": -0.1}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"'inner.n' has value 'two'; allowed: an integer"):
        from_dict(Outer, {"inner": {"n": "two"}})
    with pytest.raises(ConfigError, match=r"'train.schedule' has value 'cosin'"):
        from_dict(Outer, {"train": {"schedule": "cosin"}})


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: run\ntrain:\n  lr: 0.01\n  steps: 5\n")
    cfg = load_config(Outer, path, ["train.steps=7", "inner.n=3"])
    assert (cfg.name, cfg.train.lr, cfg.train.steps, cfg.inner.n) == ("run", 0.01, 7, 3)
    assert to_dict(cfg)["train"]["betas"] == [0.9, 0.999]
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_unknown_preset():
    with pytest.raises(ConfigError, match="neither a YAML file nor a preset"):
        load_config(Outer, "no-such-preset")


def test_override_values_are_parsed():
    from ltm_gym.core.config import parse_overrides

    assert parse_overrides(["a.b=2e-3", "c=3", "d=eve", "e=[1, 2]", "f=null"]) == \
        {"a": {"b": 0.002}, "c": 3, "d": "eve", "e": [1, 2], "f": None}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])


def test_sub_keys_of_a_named_preset_value_keep_its_name():
    from ltm_gym.core.config import merge, parse_overrides

    preset = {"task": "recall-d4", "other": 1}
    assert merge(preset, parse_overrides(["task.distance=3"])) == {"task": {"name": "recall-d4", "distance": 3}, "other": 1}
    assert merge(preset, parse_overrides(["task=babi-qa1-1k", "task.tokens=512"]))["task"] == \
        {"name": "babi-qa1-1k", "tokens": 512}


def test_command_line_options_are_generated_from_a_dataclass():
    import argparse
    from dataclasses import dataclass

    from ltm_gym.core.config import add_dataclass_arguments, dataclass_from_args

    @dataclass
    class Settings:
        steps: int = 10
        """Env steps."""
        lr: float | None = None
        levels: tuple[str, ...] = ("a", "b")

        def validate(self) -> None:
            check(self.steps >= 0, "steps", self.steps, ">= 0")

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Settings)
    assert "Env steps. (default: 10)" in " ".join(parser.format_help().split())
    assert dataclass_from_args(Settings, parser.parse_args([])) == Settings()
    got = dataclass_from_args(Settings, parser.parse_args(["--steps", "3", "--lr", "1e-3", "--levels"]))
    assert got == Settings(steps=3, lr=1e-3, levels=())
    assert dataclass_from_args(Settings, parser.parse_args(["--lr", "null"])).lr is None
    with pytest.raises(ConfigError, match="'steps' has value 'x'; allowed: an integer"):
        dataclass_from_args(Settings, parser.parse_args(["--steps", "x"]))
    with pytest.raises(ConfigError, match="'steps' has value -1"):
        dataclass_from_args(Settings, parser.parse_args(["--steps", "-1"]))


def test_malformed_yaml_and_missing_run_configs_are_named(tmp_path):
    from ltm_gym.core.config import load_preset_dict

    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML \(line 2"):
        load_preset_dict(bad)
    with pytest.raises(ConfigError, match="nowhere is not a run directory"):
        load_preset_dict(tmp_path / "nowhere" / "config.yaml")

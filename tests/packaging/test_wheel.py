"""The wheel carries every preset, and an installed package works from any directory."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ltm_gym.core.config import preset_names
from tests.fixtures import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
           "-w", str(out), str(ROOT)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("ltm_gym-*.whl")
    return path


def test_wheel_holds_every_preset(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    presets = [n for n in names if n.startswith("ltm_gym/presets/") and n.endswith(".yaml")]
    assert sorted(p[len("ltm_gym/presets/"):-len(".yaml")] for p in presets) == preset_names()
    assert {"tiny", "looped-cpu", "bptt-tiny", "agents/ppo", "agents/ppo-select", "agents/a2c-select",
            "agents/reinforce"} <= set(preset_names())
    for package in ("ltm_gym/study/layout.py", "ltm_gym/envs/reward.py", "ltm_gym/agents/base.py",
                    "ltm_gym/baselines/looped/reference.py", "ltm_gym/pipeline/study.py"):
        assert package in names
    assert not {n.split("/")[0] for n in names if n.endswith(".py")} - {"ltm_gym"}    # no top-level agents, baselines
    packages = {str(p.parent.relative_to(ROOT)) for p in ROOT.glob("**/__init__.py")
                if p.parts[len(ROOT.parts)] in ("ltm_gym", "agents", "baselines")}
    installed = {f"ltm_gym/{d}" if d.split("/")[0] in ("agents", "baselines") else d for d in packages}
    assert {f"{d}/__init__.py" for d in installed} <= set(names), "a package is missing from pyproject's list"
    shipped = {n[len("ltm_gym/default_study/"):] for n in names if n.startswith("ltm_gym/default_study/")}
    assert {"config.yaml", "reference.json", "lora_baseline.safetensors", "memory_lm.safetensors",
            "select_lm.safetensors", "lm/config.json"} <= shipped


def test_unpacked_wheel_loads_presets_and_makes_the_env_from_an_empty_directory(wheel, tmp_path):
    """No study built, no $LTM_GYM_STUDY_DIR: a bare gym.make starts from the study the wheel ships."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    cwd = tmp_path / "empty"
    cwd.mkdir()
    code = f"""
import sys
sys.path = [p for p in sys.path if p not in ({str(ROOT)!r}, '', '.')]
sys.path.insert(0, {str(site)!r})
import gymnasium as gym, ltm_gym
import ltm_gym.agents as agents, ltm_gym.baselines as baselines
assert all(m.__file__.startswith({str(site)!r}) for m in (ltm_gym, agents, baselines)), ltm_gym.__file__
from ltm_gym.core import load_config
from ltm_gym.core.config import load_preset_dict, preset_names
from ltm_gym.study import StudyConfig
from ltm_gym.baselines.looped.study import LoopedConfig
from ltm_gym.baselines.bptt_memory import BPTTConfig
kinds = {{"tiny": StudyConfig, "rugpt3small": StudyConfig, "smollm2-recall": StudyConfig, "bptt-tiny": BPTTConfig}}
for name in preset_names():
    if name.startswith("looped"):
        load_config(LoopedConfig, name)
    elif name in kinds:
        load_config(kinds[name], name)
    else:
        assert isinstance(load_preset_dict(name), dict), name
env = gym.make("ltm_gym/LLMMemory-v0", device="cpu")
obs, _ = env.reset(seed=0)
print("ok", len(preset_names()), obs["tokens"].shape)
"""
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok") and "(64,)" in done.stdout
    assert (tmp_path / "home" / ".cache" / "ltm_gym" / "study-tiny" / "select_lm.safetensors").is_file()


def test_no_path_hacks_in_library_or_scripts():
    offenders = [str(p.relative_to(ROOT)) for d in ("scripts", "ltm_gym", "agents", "baselines")
                 for p in (ROOT / d).rglob("*.py") if "sys.path.insert" in p.read_text()]
    assert offenders == []


@pytest.mark.slow
def test_installed_wheel_has_the_ltm_gym_command(wheel, tmp_path):
    """pip install of the wheel into a fresh venv (its dependencies seen from this one's
    site-packages, not its editable checkout) gives the ``ltm-gym`` command and the shipped study:
    from an empty directory, with no study built, gym.make works and an agent trains a few steps."""
    import torch

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "deps.pth").write_text(str(Path(torch.__file__).parents[1]) + "\n")   # a path line: its .pth files stay off
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = {"HF_HUB_OFFLINE": "1", "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path / "home"),
           "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1"}
    cli = str(venv / "bin" / "ltm-gym")
    listing = subprocess.run([cli, "--help"], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    assert listing.returncode == 0 and "train-agent" in listing.stdout and "eval-ladder" in listing.stdout
    run = subprocess.run([cli, "train-agent", "--steps", "8", "--num-envs", "2", "--device", "cpu", "--run-dir", "run",
                          "--set", "n_steps=2", "--set", "group_size=2", "--env-kwargs", "device=cpu"],
                         capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    steps = re.search(r"\((\d+) env steps\)", run.stdout)               # whole episodes: at least 8
    assert (cwd / "run" / "agent.pt").is_file() and steps and int(steps.group(1)) >= 8, run.stdout
    code = ("import gymnasium as gym, ltm_gym, ltm_gym.cli; env = gym.make('ltm_gym/LLMMemory-v0'); "
            "obs, _ = env.reset(seed=0); print(env.step(env.action_space.sample())[1] < 0, obs['memory'].shape, "
            "ltm_gym.cli.__file__)")
    made = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)
    assert made.returncode == 0 and made.stdout.split()[:3] == ["True", "(10,", "64)"], made.stderr[-3000:]
    assert (tmp_path / "home" / ".cache" / "ltm_gym" / "study-tiny" / "config.yaml").is_file()
    assert made.stdout.split()[3].startswith(str(venv))                  # the installed package, not the checkout

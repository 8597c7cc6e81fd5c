"""Study recipes: the settings a study's agents were tuned with, laid under a command's own.

A study may ship a recipe (``ltm_gym/presets/recipes/<study name>.yaml``): for one action mode and
the tasks whose names start with a prefix, the env arguments, the hyper-parameters of each
algorithm and the env steps that train its agents (for ``babi-tiny``: docs/babilong.md).
``train-agent`` applies it wherever the command leaves a setting out, prints what it applied and
leaves it out with ``--no-recipe``; the run's ``config.yaml`` holds the result, so a resumed or
re-evaluated run never reads the recipe again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ltm_gym.core import ConfigError, check, load_config
from ltm_gym.core.config import merge, preset_dir
from ltm_gym.envs.config import ACTION_MODES

from .registry import NAMES


@dataclass
class Recipe:
    """One study's training settings for an action mode and a family of tasks."""

    study: str = ""
    """The study's name (its config's ``name``), which is also the recipe's file name."""
    action_mode: str = "select"
    tasks: str = ""
    """The prefix of the task names it applies to (``babi-``); the study's own corpus never."""
    steps: int = 0
    """Env steps when the command gives no ``--steps`` (0: the command's default)."""
    env: dict[str, Any] = field(default_factory=dict)
    """Env arguments (nested: ``{task: {questions: 4}}`` adds a task field to the task given)."""
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Hyper-parameters per algorithm, merged over its shipped preset."""

    def validate(self) -> None:
        check(bool(self.study), "study", self.study, "the study's name")
        check(self.action_mode in ACTION_MODES, "action_mode", self.action_mode, ", ".join(ACTION_MODES))
        check(bool(self.tasks), "tasks", self.tasks, "a task-name prefix (babi-)")
        check(self.steps >= 0, "steps", self.steps, ">= 0 (0: the command's default)")
        for algo in self.agents:
            check(algo in NAMES, "agents", algo, f"one of {', '.join(NAMES)}")

    def applies(self, env_kwargs: Mapping[str, Any]) -> bool:
        """Whether an env of these arguments is one the recipe is for (its study assumed)."""
        task = env_kwargs.get("task")
        name = task.get("name", "") if isinstance(task, Mapping) else getattr(task, "name", task)
        return env_kwargs.get("action_mode") == self.action_mode and str(name or "").startswith(self.tasks)


def study_recipe(env_kwargs: Mapping[str, Any]) -> Recipe | None:
    """The recipe shipped for the study of an env of ``env_kwargs``, when it is one the recipe is for."""
    from ltm_gym.study import StudyDir

    study = StudyDir(env_kwargs.get("study_dir"), env_kwargs.get("config"))
    if not study.exists() and env_kwargs.get("config") is None:
        return None
    path = preset_dir() / "recipes" / f"{study.config.name}.yaml"
    if not path.is_file():
        return None
    recipe = load_config(Recipe, path)
    if recipe.study != study.config.name:
        raise ConfigError(f"{path}: a recipe of study {recipe.study!r} in the file of {study.config.name!r}")
    return recipe if recipe.applies(env_kwargs) else None


@dataclass
class Applied:
    """A command's settings with a recipe laid under them, and what it added (``key=value``)."""

    env_kwargs: dict[str, Any]
    hyperparams: dict[str, Any]
    steps: int | None
    added: list[str]


def apply_recipe(recipe: Recipe, algo: str, env_kwargs: Mapping[str, Any], hyperparams: Mapping[str, Any],
                 given_hyperparams: Mapping[str, Any], steps: int | None) -> Applied:
    """``recipe`` under the command's own settings: its env arguments where ``env_kwargs`` has
    none, its ``algo`` hyper-parameters over the preset ``hyperparams`` but under the ones given
    (``given_hyperparams``, already in ``hyperparams``), its steps where ``steps`` is None."""
    env = dict(env_kwargs)
    if isinstance(env.get("task"), str):
        env["task"] = {"name": env["task"]}
    added = [f"{k}={v}" for k, v in _leaves(recipe.env) if _get(env, k) is None]
    added_hyper = [f"{k}={v}" for k, v in _leaves(recipe.agents.get(algo, {})) if _get(given_hyperparams, k) is None]
    env = merge(recipe.env, env)
    hyper = merge(merge(hyperparams, recipe.agents.get(algo, {})), given_hyperparams)
    if steps is None and recipe.steps:
        steps = recipe.steps
        added.append(f"--steps {steps}")
    return Applied(env, hyper, steps, added + [f"--set {a}" for a in added_hyper])


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in tree.items():
        out += _leaves(v, f"{prefix}{k}.") if isinstance(v, Mapping) else [(f"{prefix}{k}", v)]
    return out


def _get(tree: Mapping[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node

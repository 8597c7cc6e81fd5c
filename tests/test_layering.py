"""No part imports one above it (the README's import table), checked from the sources: every
``import`` and ``from ... import`` of the package, at module level or inside a function."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOW = {"ltm_gym.core", "ltm_gym.data", "ltm_gym.lm", "ltm_gym.metrics"}
ALLOWED = {
    "ltm_gym.core": set(),
    "ltm_gym.data": {"ltm_gym.core"},
    "ltm_gym.lm": {"ltm_gym.core"},
    "ltm_gym.metrics": {"ltm_gym.core"},
    "ltm_gym.study": LOW,
    "ltm_gym.envs": LOW | {"ltm_gym.study"},
    "ltm_gym.presets": set(),
    "ltm_gym": LOW | {"ltm_gym.study", "ltm_gym.envs"},        # the package's __init__ registers the envs
    "ltm_gym.agents": LOW | {"ltm_gym", "ltm_gym.study", "ltm_gym.envs"},
    "ltm_gym.baselines": LOW | {"ltm_gym", "ltm_gym.study", "ltm_gym.envs", "ltm_gym.agents"},
    "ltm_gym.baselines.looped": {"ltm_gym.core"},
}
ALLOWED["ltm_gym.pipeline"] = set(ALLOWED)     # the study's orchestration composes every part below
ALLOWED["ltm_gym.cli"] = set(ALLOWED)          # the commands sit on top: nothing may import them
# The repository's top-level folders and the package names they install as (pyproject.toml).
INSTALLED_AS = {"agents": "ltm_gym.agents", "baselines": "ltm_gym.baselines"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    parts = INSTALLED_AS.get(parts[0], parts[0]).split(".") + parts[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part(module: str) -> str:
    """The layer of a dotted module name."""
    p = module.split(".")
    if p[:3] == ["ltm_gym", "baselines", "looped"]:
        return "ltm_gym.baselines.looped"
    return "ltm_gym" if len(p) == 1 else f"ltm_gym.{p[1]}"


def imported(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module of this project that the ``source`` of ``module`` imports (relative imports
    resolved to the package they name)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                out.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                out.add(node.module)
    return {m for m in out if m.split(".")[0] == "ltm_gym"}


SOURCES = sorted(p for pkg in ("ltm_gym", "agents", "baselines") for p in (ROOT / pkg).rglob("*.py"))


def test_every_part_is_known():
    parts = {part(module_name(p)) for p in SOURCES}
    assert parts <= set(ALLOWED), parts - set(ALLOWED)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_part_imports_one_above_it(path):
    src = part(module_name(path))
    found = imported(path.read_text(), module_name(path), path.name == "__init__.py")
    above = {m for m in found if part(m) != src and part(m) not in ALLOWED[src]}
    assert not above, f"{path.relative_to(ROOT)} ({src}) imports {sorted(above)}"


def test_the_check_sees_a_function_level_import():
    """The rule covers imports inside functions (where the study pipeline's used to be)."""
    source = "def f():\n    from ltm_gym.agents.training import train_run\n    from .reports import report\n"
    found = imported(source, "ltm_gym.study.probe")
    assert found == {"ltm_gym.agents.training", "ltm_gym.study.reports"}
    assert {part(m) for m in found} - ALLOWED["ltm_gym.study"] - {"ltm_gym.study"} == {"ltm_gym.agents"}


def test_reports_run_no_model():
    """Scoring (ltm_gym.study.scoring) runs models; reporting formats what it scored."""
    path = ROOT / "ltm_gym/study/reports.py"
    tree = ast.parse(path.read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in modules if m.split(".")[0] == "torch" or m.startswith(("ltm_gym.lm", "ltm_gym.study"))}


def test_no_top_level_agents_or_baselines_import():
    """agents/ and baselines/ are imported as ltm_gym.agents / ltm_gym.baselines only."""
    bare = {str(p.relative_to(ROOT)) for p in SOURCES + sorted((ROOT / "tests").rglob("*.py"))
            for node in ast.walk(ast.parse(p.read_text()))
            for name in ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if name.split(".")[0] in INSTALLED_AS}
    assert not bare, bare

import pytest

from tests.fixtures import ROOT, load_script

SCRIPTS = sorted(p.stem for p in (ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_explains_itself(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        load_script(name).main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and len(out.splitlines()) > 3


def test_one_command_runs_every_script(capsys):
    from ltm_gym.cli import COMMANDS, main

    assert sorted(name.replace("-", "_") for name in COMMANDS) == SCRIPTS    # scripts/NAME.py per command
    main(["--help"])
    listing = capsys.readouterr().out
    assert listing.startswith("usage: ltm-gym COMMAND") and all(name in listing for name in COMMANDS)
    with pytest.raises(SystemExit) as exit_:
        main(["train-agent", "--help"])
    assert exit_.value.code == 0 and "--env-kwargs" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["train-agnet"])
    assert exit_.value.code == 2 and "did you mean 'train-agent'?" in capsys.readouterr().err

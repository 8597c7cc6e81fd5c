import io

from ltm_gym.core import progress as progress_mod
from ltm_gym.core.progress import progress_bar


def test_a_log_file_gets_whole_lines_not_redraws(monkeypatch):
    monkeypatch.setattr(progress_mod, "LOG_INTERVAL", 0.0)
    log = io.StringIO()                                            # not a terminal
    bar = progress_bar(total=50, desc="work", file=log)
    for _ in range(50):
        bar.update(1)
        bar.set_postfix(loss="1.0", refresh=False)
    bar.close()
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines and all(line.startswith("work:") for line in lines) and "50/50" in lines[-1]


def test_a_quiet_log_between_intervals():
    log = io.StringIO()
    bar = progress_bar(total=1000, desc="work", file=log)          # the default interval: 30 s
    for _ in range(1000):
        bar.update(1)
    bar.close()
    assert len(log.getvalue().splitlines()) <= 3                   # start, (maybe one), end

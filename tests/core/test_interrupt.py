"""SIGINT and SIGTERM are one stop request: the first sets it (the loop finishes its update and
checkpoints), a second stops at once, and leaving the block restores the previous handlers.
tests/reliability/test_kill.py sends each signal to a real run, one per loop that catches them."""

import os
import signal

import pytest

from ltm_gym.core.interrupt import STOP_SIGNALS, Interrupted, stop_requested, stop_signals


@pytest.mark.parametrize("sig", STOP_SIGNALS)
def test_each_stop_signal_requests_a_stop_and_a_second_stops_at_once(sig, capsys):
    before = signal.getsignal(sig)
    with stop_signals():
        assert stop_requested() is None
        os.kill(os.getpid(), sig)
        assert stop_requested() == sig
        assert signal.Signals(sig).name in capsys.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), sig)
    assert stop_requested() is None and signal.getsignal(sig) is before
    message = str(Interrupted(sig, "run/checkpoint.pt", "step 7", "resume with --resume"))
    assert message == f"stopped by {signal.Signals(sig).name} at step 7: checkpoint run/checkpoint.pt; resume with --resume"

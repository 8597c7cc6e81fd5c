import pytest

from ltm_gym.core import device as device_mod
from tests.fixtures import load_script


def test_bench_refuses_emulated_bf16(monkeypatch, capsys):
    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: [])
    bench = load_script("bench_looped")
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--precision", "bf16", "--steps", "1"])
    assert exit_.value.code == 2
    assert "--precision bf16 on a CPU without AVX512-BF16/AMX" in capsys.readouterr().err

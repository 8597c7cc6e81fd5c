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


def test_gemm_peak_reports_every_shape():
    from ltm_gym.cli.bench import looped as bench

    peaks = bench.gemm_peak(1, [(64, 32, 16), (128, 128, 128)], repeats=2)
    assert list(peaks) == ["64 x 32 x 16", "128 x 128 x 128"]
    assert all(0.01 < v < 1e5 for v in peaks.values())


def test_bench_rejects_negative_profile(capsys):
    bench = load_script("bench_looped")
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--profile", "-1"])
    assert exit_.value.code == 2
    assert "--profile (-1)" in capsys.readouterr().err

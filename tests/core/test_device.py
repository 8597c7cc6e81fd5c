import pytest
import torch

from ltm_gym.core import bf16_support, cpu_bf16_flags, resolve_precision
from ltm_gym.core import device as device_mod

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_cpu_bf16_flags_read_from_cpuinfo():
    assert cpu_bf16_flags(AVX2) == []
    assert cpu_bf16_flags(SAPPHIRE) == ["avx512_bf16", "amx_bf16"]
    assert cpu_bf16_flags("") == []


@pytest.mark.parametrize("cpuinfo, auto", [(AVX2, "fp32"), (SAPPHIRE, "bf16")])
def test_auto_precision_follows_native_bf16(monkeypatch, cpuinfo, auto):
    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: cpu_bf16_flags(cpuinfo))
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == auto
    assert resolve_precision("fp32", cpu) == "fp32"
    native, why = bf16_support(cpu)
    assert native == (auto == "bf16") and ("emulated" in why) != native


def test_explicit_bf16_on_an_emulating_cpu_warns(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_bf16_flags", lambda: [])
    with pytest.warns(RuntimeWarning, match="emulated"):
        assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="'fp16'"):
        resolve_precision("fp16", torch.device("cpu"))


@pytest.mark.parametrize("forced, auto", [("1", "bf16"), ("0", "fp32")])
def test_env_var_forces_the_cpu_kind(monkeypatch, forced, auto):
    """LTM_GYM_CPU_BF16 makes any CPU act as one with (1) or without (0) native bf16: how the
    suite is run as on the other kind of machine (make test-bf16)."""
    monkeypatch.setenv(device_mod.CPU_BF16_ENV, forced)
    assert resolve_precision("auto", torch.device("cpu")) == auto
    assert cpu_bf16_flags(AVX2) == []                      # an explicit cpuinfo text is read as given
    monkeypatch.setenv(device_mod.CPU_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="LTM_GYM_CPU_BF16='yes'"):
        cpu_bf16_flags()


def test_a_device_that_is_not_one_is_named():
    import pytest

    from ltm_gym.core.device import choose_device

    with pytest.raises(ValueError, match="'tpu' is not a device name"):
        choose_device("tpu")
    assert choose_device("cpu").type == "cpu"

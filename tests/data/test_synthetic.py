import pytest

from ltm_gym.core import ConfigError, from_dict
from ltm_gym.data import SyntheticConfig, Vocabulary, generate_corpus, synthetic_tokenizer, tokenize_documents


def cfg(**kw):
    base = dict(n_documents=12, n_segments=4, segment_len=48, n_facts=3, n_values=20, n_keys=32, filler_words=40)
    return from_dict(SyntheticConfig, {**base, **kw})


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return synthetic_tokenizer(cfg(), tmp_path_factory.mktemp("tok"), vocab_size=512)


def test_deterministic_and_seeded():
    a, b = generate_corpus(cfg()), generate_corpus(cfg())
    assert [d.text for d in a] == [d.text for d in b]
    assert a[0].text != generate_corpus(cfg(seed=1))[0].text
    assert a[0].text != a[1].text


def test_layout_and_answers(tok):
    c = cfg(n_distractors=1)
    corpus = generate_corpus(c)
    docs = tokenize_documents([{"text": d.text, "answer_spans": d.answer_spans} for d in corpus], tok,
                              c.segment_len, 0)
    vocab = Vocabulary(c)
    remember = tok.convert_tokens_to_ids(tok.tokenize(" " + vocab.remember))[0]
    for doc, raw in zip(docs, corpus):
        assert doc.ids.shape == (c.n_segments, c.segment_len)       # one token per word: exact layout
        per_seg = doc.answer_mask.sum(1).tolist()
        assert per_seg == [0] + [c.n_facts] * (c.n_segments - 1)
        flat, mask = doc.ids.reshape(-1), doc.answer_mask.reshape(-1)
        stated = {}
        for i in range(len(flat) - 3):
            if flat[i] == remember:
                stated[int(flat[i + 2])] = int(flat[i + 3])
        for pos in mask.nonzero().flatten().tolist():
            key, value = int(flat[pos - 1]), int(flat[pos])
            assert stated[key] == value                                  # the answer is the stated value
            assert tok.decode([value]).strip() in vocab.values


def test_russian_words_are_single_tokens(tmp_path):
    c = cfg(language="ru")
    tok = synthetic_tokenizer(c, tmp_path, vocab_size=1024)
    for w in Vocabulary(c).all_words()[:80]:
        assert len(tok(" " + w)["input_ids"]) == 1, w
    assert "запомни" in generate_corpus(c)[0].text


def test_tokenizer_is_cached(tmp_path):
    t1 = synthetic_tokenizer(cfg(), tmp_path, vocab_size=512)
    assert len(list(tmp_path.iterdir())) == 1
    t2 = synthetic_tokenizer(cfg(), tmp_path, vocab_size=512)
    assert t1.get_vocab() == t2.get_vocab()


def test_small_vocab_is_refused(tmp_path):
    with pytest.raises(ValueError, match="vocab_size=270 splits"):
        synthetic_tokenizer(cfg(), tmp_path, vocab_size=270)


def test_bad_knobs_are_named():
    with pytest.raises(ConfigError, match="n_keys"):
        cfg(n_keys=4)
    with pytest.raises(ConfigError, match="distance"):
        cfg(distance=4)
    with pytest.raises(ConfigError, match="segment_len"):
        cfg(segment_len=20)


def test_word_tokenizer_has_only_corpus_words(tmp_path):
    c = cfg()
    tok = synthetic_tokenizer(c, tmp_path, kind="word")
    words = Vocabulary(c).all_words()
    assert len(tok) == len(set(words)) + 2                      # + BOS and <unk>
    corpus = generate_corpus(c)
    docs = tokenize_documents([{"text": d.text, "answer_spans": d.answer_spans} for d in corpus], tok, c.segment_len, 0)
    assert docs[0].ids.shape == (c.n_segments, c.segment_len)
    assert docs[0].answer_mask.sum() == c.n_facts * (c.n_segments - 1)
    with pytest.raises(ValueError, match="tokenizer kind"):
        synthetic_tokenizer(c, tmp_path, kind="chars")

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


@pytest.fixture(scope="module")
def splitting(tmp_path_factory):
    """A byte-level BPE with few merges: the corpus's keys, values and filler take several tokens."""
    from ltm_gym.data.tokenizer import train_bpe

    return train_bpe([d.text for d in generate_corpus(cfg(n_documents=40))], vocab_size=290)


def test_documents_are_laid_out_in_the_tokens_of_a_tokenizer_that_splits_words(tok, splitting):
    from ltm_gym.data.tokenizer import word_costs

    c = cfg(distance=2, n_segments=5, segment_len=96)
    assert set(word_costs(c, tok).values()) == {1}                  # the corpus's own tokenizer: one each
    assert [d.text for d in generate_corpus(c, word_costs(c, tok))] == [d.text for d in generate_corpus(c)]
    costs = word_costs(c, splitting)
    assert max(costs.values()) >= 3 and costs["."] == 1
    corpus = generate_corpus(c, costs)
    docs = tokenize_documents([d.record(i) for i, d in enumerate(corpus)], splitting, c.segment_len, 0)
    vocab = Vocabulary(c)
    for doc, raw in zip(docs, corpus):
        assert doc.ids.shape == (c.n_segments, c.segment_len)       # exactly the segments, in its tokens
        asked = (doc.answer_distance > 0).sum(1).tolist()
        assert asked[:2] == [0, 0] and min(asked[2:]) > 0            # questions 2 segments after their facts
        values = [raw.text[a:b] for a, b in raw.answer_spans]
        assert all(v in vocab.values for v in values)
        text = splitting.decode(doc.ids[doc.answer_mask].tolist()).replace(" ", "")
        assert text == "".join(values)                              # every token of every answer, nothing else
        for t in range(c.n_segments):                               # each question in its own segment
            assert splitting.decode(doc.ids[t].tolist()).count(vocab.recall) == int(asked[t] > 0) * c.n_facts


def test_a_segment_too_short_for_its_facts_in_the_tokenizer_is_named(splitting):
    from ltm_gym.data.tokenizer import word_costs

    c = cfg(segment_len=40)
    with pytest.raises(ValueError, match="segment_len=40 tokens cannot hold"):
        generate_corpus(c, {w: 3 for w in word_costs(c, splitting)})

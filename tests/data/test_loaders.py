import json

import pytest
import torch

from ltm_gym.data import CorpusError, build_linked_context, load_documents, split_documents, tokenize_documents
from ltm_gym.data.segments import Document


class WordTokenizer:
    """Whitespace tokenizer with offsets, of one text or a batch as an HF tokenizer: enough to test
    segmentation."""

    def __call__(self, text, return_offsets_mapping=False, add_special_tokens=False):
        if isinstance(text, list):
            each = [self(t) for t in text]
            return {"input_ids": [e["input_ids"] for e in each], "offset_mapping": [e["offset_mapping"] for e in each]}
        ids, offs, pos = [], [], 0
        for w in text.split(" "):
            if w:
                ids.append(len(w))
                offs.append((pos, pos + len(w)))
            pos += len(w) + 1
        return {"input_ids": ids, "offset_mapping": offs}


def test_txt_directory_and_jsonl(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first")
    assert [d["text"] for d in load_documents(tmp_path)] == ["first", "second"]
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"text": "x y"}) + "\n\n" + json.dumps({"text": "z", "id": "q"}) + "\n")
    assert load_documents(f) == [{"id": 0, "text": "x y"}, {"id": "q", "text": "z"}]


def test_jsonl_errors_name_the_place(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "ok"}\n{not json}\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2"):
        load_documents(f)
    f.write_text('{"body": "x"}\n')
    with pytest.raises(CorpusError, match="no 'text' field"):
        load_documents(f)
    with pytest.raises(CorpusError, match="has no .txt files"):
        load_documents(_empty(tmp_path))
    with pytest.raises(CorpusError, match="does not exist"):
        load_documents(tmp_path / "missing.jsonl")


def _empty(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_linked_context_builder(tmp_path):
    records = [
        {"id": 1, "title": "Paris", "sections": ["P1", "P2"], "links": [[2], []]},
        {"id": 2, "title": "Seine", "sections": ["S1"], "links": [[1, 99]]},
    ]
    docs = build_linked_context(records)
    assert docs[0]["text"] == "S1\nP1\nP2"          # section 1 preceded by the linked article
    assert docs[1]["text"] == "P1\nP2\nS1"          # unknown id 99 skipped
    f = tmp_path / "wiki.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in records))
    assert load_documents(f)[0]["text"] == "S1\nP1\nP2"
    with pytest.raises(CorpusError, match="2 link lists for 1 sections"):
        build_linked_context([{"id": 3, "sections": ["a"], "links": [[], []]}])


def test_segmentation_drops_short_documents_and_tail():
    docs = [{"text": " ".join(["w"] * 10)}, {"text": " ".join(["ab"] * 25), "answer_spans": [(3, 5)]}]
    out = tokenize_documents(docs, WordTokenizer(), segment_len=8, min_tokens=12)
    assert len(out) == 1 and out[0].ids.shape == (3, 8)                 # 25 tokens -> 3 whole segments
    assert out[0].answer_mask.reshape(-1).nonzero().flatten().tolist() == [1]
    with pytest.raises(CorpusError, match="the corpus is empty"):
        tokenize_documents([], WordTokenizer(), 8)
    with pytest.raises(CorpusError, match=r"none of the 1 documents has >= 16 tokens"):
        tokenize_documents(docs[:1], WordTokenizer(), segment_len=8, min_tokens=0)


def test_split_is_seeded_disjoint_and_80_10_10():
    docs = [Document(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.bool), i) for i in range(50)]
    a, b = split_documents(docs, seed=3), split_documents(docs, seed=3)
    ids = {k: [d.doc_id for d in v] for k, v in a.items()}
    assert ids == {k: [d.doc_id for d in v] for k, v in b.items()}
    assert [len(v) for v in ids.values()] == [40, 5, 5]
    assert set(ids["train"]).isdisjoint(ids["test"]) and len(set(sum(ids.values(), []))) == 50


def test_linked_context_keeps_first_links_and_cuts_them_at_a_word():
    records = [
        {"id": "a", "sections": ["A section"], "links": [["b", "c", "d"]]},
        {"id": "b", "sections": ["bee one two three"]},
        {"id": "c", "sections": ["sea"]},
        {"id": "d", "sections": ["dee"]},
    ]
    assert build_linked_context(records)[0]["text"] == "bee one two three\nsea\ndee\nA section"
    assert build_linked_context(records, max_links=2)[0]["text"] == "bee one two three\nsea\nA section"
    assert build_linked_context(records, max_links=0)[0]["text"] == "A section"
    # cut to 10 characters ("bee one tw"), back to the last whole word
    assert build_linked_context(records, max_links=1, link_chars=10)[0]["text"] == "bee one\nA section"


def test_carried_tokens_are_bigrams_of_the_previous_segment_not_yet_seen():
    from ltm_gym.data.segments import carried_tokens

    ids = torch.tensor([[1, 2, 3, 4],
                        [9, 2, 3, 2],     # (2, 3) was in segment 0; (3, 2) was not
                        [2, 3, 2, 3]])    # (2, 3) and (3, 2) were in segment 1; the second (2, 3) was seen already
    assert carried_tokens(ids).tolist() == [[False] * 4,
                                            [False, False, True, False],
                                            [False, True, True, False]]


def test_tokenize_documents_with_carried_answer_tokens():
    text = "a b c d x b c y"                    # two segments of 4: (b, c) carried into the second
    out = tokenize_documents([{"text": text, "answer_spans": [(0, 1)]}], CharTokenizer(), 4, 0, None, "carried")
    assert out[0].answer_mask.tolist() == [[False] * 4, [False, False, True, False]]
    spans = tokenize_documents([{"text": text, "answer_spans": [(0, 1)]}], CharTokenizer(), 4, 0, None)
    assert spans[0].answer_mask[0, 0] and spans[0].answer_mask.sum() == 1
    with pytest.raises(CorpusError, match="answer_tokens='both' is not one of spans, carried"):
        tokenize_documents([{"text": text}], CharTokenizer(), 4, 0, None, "both")


def test_corpus_config_refuses_carried_tokens_on_the_synthetic_corpus():
    from ltm_gym.core.config import ConfigError, load_config
    from ltm_gym.data.corpus import CorpusConfig

    with pytest.raises(ConfigError, match="answer_tokens"):
        load_config(CorpusConfig, {"answer_tokens": "carried"})
    with pytest.raises(ConfigError, match="link_chars"):
        load_config(CorpusConfig, {"source": "x.jsonl", "link_chars": 0})
    assert load_config(CorpusConfig, {"source": "x.jsonl", "answer_tokens": "carried", "max_links": 2}).max_links == 2


class CharTokenizer(WordTokenizer):
    """One token per whitespace-separated word, the word's first character's code as its id."""

    def __call__(self, text, return_offsets_mapping=False, add_special_tokens=False):
        out = super().__call__(text)
        if isinstance(text, list):
            out["input_ids"] = [[ord(t[a]) for a, _ in offs] for t, offs in zip(text, out["offset_mapping"])]
        else:
            out["input_ids"] = [ord(text[a]) for a, _ in out["offset_mapping"]]
        return out

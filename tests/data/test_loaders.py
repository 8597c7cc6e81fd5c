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

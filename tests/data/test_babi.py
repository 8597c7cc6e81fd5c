"""bAbI stories, the book text and the bAbI-in-books documents (BABILong's layout)."""

import random

import pytest
import torch

from ltm_gym.core import ConfigError
from ltm_gym.data import babi
from ltm_gym.data.babilong import BabiSplits, BabiTaskConfig, babi_document, babi_level, pieces_for
from ltm_gym.data.books import BOOK_SPLITS, load_books, split_sentences, write_books
from ltm_gym.data.tasks import load_task
from ltm_gym.data.tokenizer import train_bpe

BOOK = ("It was a truth universally acknowledged. Mr. Bennet replied that he had not! Was it? "
        "She smiled at the thought, and the evening passed quietly by the fire. ") * 40


@pytest.fixture(scope="module")
def tokenizer():
    rng = random.Random(0)
    stories = [" ".join(f.text for f in babi.generate_story(1 + i % 3, 12, rng).facts) for i in range(300)]
    questions = [" Where is Mary? Answer: kitchen.", " Where was the apple before the garden? Answer: office."]
    return train_bpe(stories + questions + split_sentences(BOOK), 600, babi.words())


def test_sentences_are_cut_at_ends_but_not_after_titles_and_round_trip(tmp_path):
    sentences = split_sentences("It was late.  Mr. Darcy came in! Did he? 'Yes,' she said.")
    assert sentences == ["It was late.", "Mr. Darcy came in!", "Did he?", "'Yes,' she said."]
    path = write_books({"a": sentences, "b": ["One."]}, tmp_path / "books.json.gz")
    assert load_books(path) == {"a": tuple(sentences), "b": ("One.",)}


def test_the_shipped_books_cover_every_split_and_keep_test_books_apart():
    books = load_books()
    assert set(b for split in BOOK_SPLITS.values() for b in split) <= set(books)
    assert not set(BOOK_SPLITS["test"]) & set(BOOK_SPLITS["train"])
    assert all(len(books[b]) > 1000 for b in BOOK_SPLITS["test"])


def test_qa1_answers_the_actors_latest_location():
    story = babi.Story(1, [babi.Fact("move", "Mary", "kitchen", "Mary went to the kitchen."),
                           babi.Fact("move", "John", "garden", "John went to the garden."),
                           babi.Fact("move", "Mary", "office", "Mary moved to the office.")])
    q = story.ask(None, random.Random(3))
    assert (q.text, q.answer, q.support) in {("Where is Mary?", "office", (2,)), ("Where is John?", "garden", (1,))}
    first = story.ask(1, random.Random(0))
    assert (first.text, first.answer, first.support) == ("Where is Mary?", "kitchen", (0,))


def test_qa2_and_qa3_follow_the_object_through_its_holder():
    facts = [babi.Fact("move", "John", "kitchen", "John went to the kitchen."),
             babi.Fact("take", "John", "apple", "John got the apple."),
             babi.Fact("move", "John", "garden", "John went to the garden."),
             babi.Fact("drop", "John", "apple", "John dropped the apple."),
             babi.Fact("move", "John", "office", "John went to the office.")]
    q2 = babi.Story(2, facts).ask(None, random.Random(0))
    assert (q2.text, q2.answer, q2.support) == ("Where is the apple?", "garden", (2, 3))
    q3 = babi.Story(3, facts).ask(None, random.Random(0))
    assert (q3.text, q3.answer) == ("Where was the apple before the garden?", "kitchen")
    assert set(q3.support) == {0, 1, 2}


@pytest.mark.parametrize("qa", [1, 2, 3])
def test_generated_stories_are_seeded_and_consistent(qa):
    a = babi.generate_story(qa, 20, random.Random(7))
    b = babi.generate_story(qa, 20, random.Random(7))
    assert a == b and len(a.facts) == 20
    held: dict[str, str] = {}
    for fact in a.facts:                      # an actor takes only a free object, drops only what it holds
        if fact.kind == "take":
            assert fact.target not in held
            held[fact.target] = fact.actor
        elif fact.kind == "drop":
            assert held.pop(fact.target) == fact.actor
        assert fact.text.split()[0] == fact.actor and fact.text.rstrip(".").split()[-1] == fact.marked
        assert len(fact.text.split()) <= 5                   # the marked word at most 4 after the actor


def test_a_document_is_the_story_in_book_text_with_the_question_at_the_end(tokenizer):
    task = BabiTaskConfig(name="t", qa=1, tokens=512, n_documents=2, n_eval=2)
    book_ids = pieces_for(tokenizer).many(split_sentences(BOOK))
    doc = babi_document(task, "test", 0, tokenizer, 64, book_ids)
    again = babi_document(task, "test", 0, tokenizer, 64, book_ids)
    assert torch.equal(doc.ids, again.ids) and doc.ids.shape == (8, 64)
    flat = doc.ids.reshape(-1)
    answer = doc.answer_mask.reshape(-1).nonzero().flatten().tolist()
    assert len(answer) == 1 and answer[0] == 510                      # the answer word, then "."
    text = tokenizer.decode(flat[answer[0] - 6 : 512])
    assert text.startswith(" Where is ") and "Answer:" in text and text.endswith(".")
    due = doc.fact_due.reshape(-1)
    facts = (due != 0).nonzero().flatten().tolist()
    assert len(facts) == 8                                            # qa1's default story
    support = (due == 7).nonzero().flatten().tolist()
    assert len(support) == 1 and set(due[facts].tolist()) <= {-1, 7}
    assert tokenizer.decode(flat[support[0]]).strip() == tokenizer.decode(flat[answer[0]]).strip()   # qa1: its location
    assert doc.oracle.tolist() == flat[support[0] - 4 : support[0] + 2].tolist()   # "Mary moved to the X ."
    assert int(doc.answer_distance.reshape(-1)[answer[0]]) == 7 - support[0] // 64
    source = doc.answer_source.reshape(-1)
    assert source[answer[0]] == support[0] and (source[: answer[0]] == -1).all()   # the word that states the answer
    actor = doc.fact_actor.reshape(-1)
    assert ((actor > 0) == (due != 0)).all() and tokenizer.decode(flat[support[0] - 4]).strip() in babi.ACTORS


def test_splits_are_built_when_read_and_levels_are_named_by_length(tokenizer):
    splits = BabiSplits(BabiTaskConfig(name="t", qa=2, tokens=256, n_documents=3, n_eval=2), tokenizer, 64)
    assert splits._built == {}
    assert len(splits["test"]) == 2 and list(splits._built) == ["test"]
    assert babi_level("babi-qa3-16k").qa == 3 and babi_level("babi-qa3-16k").tokens == 16 * 1024
    task = load_task({"name": "babi-qa1-4k", "tokens": 3000, "seed": 7})
    assert (task.qa, task.tokens, task.seed) == (1, 3000, 7) and task.name.startswith("babi-qa1-4k(")
    with pytest.raises(ConfigError, match="not a bAbI level"):
        load_task("babi-qa4-1k")
    with pytest.raises(ConfigError, match="task.book"):
        load_task({"name": "babi-qa1-1k", "book": "ulysses"})


def test_a_story_too_long_for_the_document_is_refused_by_name(tokenizer):
    task = BabiTaskConfig(name="short", qa=3, tokens=128, facts=40)
    with pytest.raises(ConfigError, match="cannot hold its story"):
        babi_document(task, "test", 0, tokenizer, 64, [[5, 6, 7]])

"""bAbI-style stories, generated: actors move between locations, pick up and put down objects; a
question asks where someone or something is (or was), and the answer is one word.

* ``qa1`` (single supporting fact): "Mary moved to the bathroom." ... "Where is Mary?" -> the
  actor's latest location (facts overwrite earlier ones);
* ``qa2`` (two supporting facts): "John picked up the football." ... "John went to the kitchen."
  ... "Where is the football?" -> its holder's latest location, or where it was put down;
* ``qa3`` (three supporting facts): "Where was the football before the kitchen?" -> the location
  the object was in before it reached its latest one.

Every fact is one sentence whose last word (a location or an object) is its *marked* word, at most
four words after the actor, so a code of the marked word and the four tokens before it holds the
whole fact. A story is a pure function of its seed; questions can be asked at any point of it
(:meth:`Story.ask`), about the world after the facts stated so far.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from ltm_gym.core.errors import UserError

ACTORS = ("Mary", "John", "Daniel", "Sandra")
LOCATIONS = ("bathroom", "hallway", "kitchen", "office", "garden", "bedroom")
OBJECTS = ("football", "apple", "milk")
MOVES = ("moved to the", "went to the", "travelled to the", "journeyed to the")
TAKES = ("picked up the", "got the", "grabbed the", "took the")
DROPS = ("dropped the", "put down the", "discarded the", "left the")
QA_TASKS = (1, 2, 3)
ANSWER_CUE = "Answer:"


def words() -> list[str]:
    """Every word a story or question can use (what a study's tokenizer must keep whole)."""
    verbs = {w for phrase in MOVES + TAKES + DROPS for w in phrase.split()}
    return sorted(set(ACTORS) | set(LOCATIONS) | set(OBJECTS) | verbs | {"Where", "is", "was", "before", "Answer"})


@dataclass(frozen=True)
class Fact:
    kind: str           # move | take | drop
    actor: str
    target: str         # a location (move) or an object (take, drop)
    text: str

    @property
    def marked(self) -> str:
        """The fact's last word: what a memory slot of it is the code of."""
        return self.target


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    support: tuple[int, ...]
    """Indices of the facts the answer rests on."""


@dataclass
class World:
    """The state after some facts: where actors are, who holds what, where objects have been."""

    at: dict[str, tuple[str, int]] = field(default_factory=dict)        # actor -> (location, fact)
    held: dict[str, tuple[str, int]] = field(default_factory=dict)      # object -> (actor, take fact)
    placed: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)  # dropped object -> (loc, facts)
    trail: dict[str, list[tuple[str, tuple[int, ...]]]] = field(default_factory=dict)  # object -> its locations

    def apply(self, i: int, fact: Fact) -> None:
        if fact.kind == "move":
            self.at[fact.actor] = (fact.target, i)
            for obj, (holder, took) in self.held.items():
                if holder == fact.actor:
                    self._visit(obj, fact.target, (took, i))
        elif fact.kind == "take":
            self.held[fact.target] = (fact.actor, i)
            self.placed.pop(fact.target, None)
            loc, moved = self.at[fact.actor]
            self._visit(fact.target, loc, (i, moved))
        else:
            holder, took = self.held.pop(fact.target)
            loc, moved = self.at[holder]
            self.placed[fact.target] = (loc, tuple(sorted((i, moved))))

    def _visit(self, obj: str, loc: str, facts: tuple[int, ...]) -> None:
        trail = self.trail.setdefault(obj, [])
        if not trail or trail[-1][0] != loc:
            trail.append((loc, facts))

    def where(self, obj: str) -> tuple[str, tuple[int, ...]] | None:
        """An object's location now and the facts that say so."""
        if obj in self.held:
            holder, took = self.held[obj]
            loc, moved = self.at[holder]
            return loc, tuple(sorted({took, moved}))
        return self.placed.get(obj)


@dataclass
class Story:
    qa: int
    facts: list[Fact]

    def world(self, n: int | None = None) -> World:
        """The world after the first ``n`` facts (all by default)."""
        w = World()
        for i, fact in enumerate(self.facts[:n]):
            w.apply(i, fact)
        return w

    def ask(self, n: int | None, rng: random.Random) -> Question | None:
        """A question of the story's task about the world after the first ``n`` facts (None when
        nothing can be asked yet)."""
        w = self.world(n)
        if self.qa == 1:
            actors = sorted(w.at)
            if not actors:
                return None
            actor = rng.choice(actors)
            loc, i = w.at[actor]
            return Question(f"Where is {actor}?", loc, (i,))
        if self.qa == 2:
            objs = [o for o in OBJECTS if w.where(o) is not None]
            if not objs:
                return None
            obj = rng.choice(objs)
            loc, support = w.where(obj)
            return Question(f"Where is the {obj}?", loc, support)
        objs = [o for o, trail in sorted(w.trail.items()) if len(trail) >= 2
                and [loc for loc, _ in trail].count(trail[-1][0]) == 1]
        if not objs:
            return None
        obj = rng.choice(objs)
        (before, first), (last, second) = w.trail[obj][-2:]
        return Question(f"Where was the {obj} before the {last}?", before, tuple(sorted(set(first) | set(second))))


def generate_story(qa: int, n_facts: int, rng: random.Random) -> Story:
    """A story of ``n_facts`` facts for task ``qa`` (1, 2 or 3). qa1 only moves actors; qa2 and qa3
    also take and drop objects (an actor takes a free object where it stands: its location must
    be known; it drops only what it holds), with more takes in qa3 so objects travel."""
    if qa not in QA_TASKS:
        raise UserError(f"qa={qa!r}; bAbI tasks: {QA_TASKS}")
    facts: list[Fact] = []
    w = World()
    take_p, drop_p = {1: (0.0, 0.0), 2: (0.25, 0.15), 3: (0.3, 0.1)}[qa]
    while len(facts) < n_facts:
        r = rng.random()
        placed = [a for a in ACTORS if a in w.at]
        free = [o for o in OBJECTS if o not in w.held]
        holders = sorted({a for a, _ in w.held.values()})
        if r < take_p and placed and free:
            actor, obj = rng.choice(placed), rng.choice(free)
            fact = Fact("take", actor, obj, f"{actor} {rng.choice(TAKES)} {obj}.")
        elif r < take_p + drop_p and holders:
            actor = rng.choice(holders)
            obj = rng.choice(sorted(o for o, (a, _) in w.held.items() if a == actor))
            fact = Fact("drop", actor, obj, f"{actor} {rng.choice(DROPS)} {obj}.")
        else:
            actor = rng.choice(ACTORS)
            here = w.at.get(actor, (None, 0))[0]
            loc = rng.choice([loc for loc in LOCATIONS if loc != here])
            fact = Fact("move", actor, loc, f"{actor} {rng.choice(MOVES)} {loc}.")
        w.apply(len(facts), fact)
        facts.append(fact)
    return Story(qa, facts)

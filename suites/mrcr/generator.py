"""Michelangelo-style MRCR generator: a long synthetic multi-turn conversation in which the user
asks for many pieces of writing (poems, essays, riddles, … on topics) and the assistant writes
them; N identical requests (the needles: same format, same topic) are spread through it, and the
final question asks for the i-th of them, prefixed with a random string.

- Seeded and deterministic: the same (seed, target, needles, tokenizer) gives the same bytes.
- Hits a target length in tokens of any tokenizer: every message is counted as it is made, the
  last filler answer is cut to the tokens left, so the total lands within a few tokens (≪ 1%).
  Two measures: "content" = prompt message contents + answer (how OpenAI-MRCR bins), "chat" =
  the prompt as the model sees it through its chat template (the request's prompt tokens).
- Writes the OpenAI-MRCR fields (prompt as a JSON list of messages, answer,
  random_string_to_prepend, n_needles, desired_msg_index, total_messages, n_chars), so the
  OpenAI-MRCR grader and loader take it unchanged; extra fields say how it was made.
- Streams to disk: one message in memory at a time (plus the needles' answers).

Distractors are drawn so that some share the needle's format (other topic) and some its topic
(other format), the hard negatives that make MRCR more than a search for a string.

    python -m m1bench.suites.mrcr.generator --lengths 131072 1048576 --needles 2 8 --tokenizer o200k_base --out mrcr.jsonl
"""
from __future__ import annotations

import argparse
import json
import random
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

from m1bench.suites.mrcr import words as W
from m1bench.suites.mrcr.tokens import TokenCounter

GENERATOR_VERSION = "1"
MIN_TARGET = 2048  # needles and question need room; 1% of this is still more than a cut can miss
TAIL = 256  # a turn is only written whole if it leaves 0 or at least this many tokens for the next
PREFIX_ALPHABET = string.ascii_letters + string.digits
MEASURES = ("content", "chat")


@dataclass(frozen=True)
class SampleSpec:
    target_tokens: int
    n_needles: int
    seed: int


def ordinal(i: int) -> str:
    suffix = "th" if 10 <= i % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(i % 10, "th")
    return f"{i}{suffix}"


# ---- text ---------------------------------------------------------------------------------

def _sentence(rng: random.Random, topic: str) -> str:
    c = rng.choice
    form = rng.randrange(6)
    if form == 0:
        return f"The {c(W.ADJECTIVES)} {c(W.NOUNS)} {c(W.VERBS)} the {c(W.ADJECTIVES)} {c(W.NOUNS)} {c(W.PREPOSITIONS)} the {c(W.NOUNS)}."
    if form == 1:
        return f"{c(W.OPENERS)} the {topic} {c(W.VERBS)} {c(W.ADVERBS)} {c(W.PREPOSITIONS)} a {c(W.ADJECTIVES)} {c(W.NOUNS)}."
    if form == 2:
        return (f"{c(W.NAMES)} {c(W.VERBS)} the {c(W.ADJECTIVES)} {topic} {c(W.PREPOSITIONS)} the {c(W.NOUNS)}, "
                f"and the {c(W.NOUNS)} {c(W.VERBS)} {c(W.ADVERBS)}.")
    if form == 3:
        return f"Nothing {c(W.VERBS)} a {c(W.NOUNS)} like {topic} {c(W.PREPOSITIONS)} a {c(W.ADJECTIVES)} {c(W.NOUNS)}."
    if form == 4:
        return (f"Some say the {c(W.NOUNS)} {c(W.VERBS)} every {c(W.ADJECTIVES)} {c(W.NOUNS)}, "
                f"but {topic} {c(W.ADVERBS)} {c(W.VERBS)} the {c(W.NOUNS)}.")
    return f"A {c(W.ADJECTIVES)} {c(W.NOUNS)}, a {c(W.ADJECTIVES)} {c(W.NOUNS)}, and {topic} {c(W.VERBS)} it {c(W.ADVERBS)}."


def _paragraph(rng: random.Random, topic: str, lo: int = 4, hi: int = 8) -> str:
    return " ".join(_sentence(rng, topic) for _ in range(rng.randint(lo, hi)))


def _line(rng: random.Random, topic: str) -> str:
    c = rng.choice
    form = rng.randrange(4)
    if form == 0:
        return f"{c(W.ADJECTIVES)} {c(W.NOUNS)} {c(W.PREPOSITIONS)} the {c(W.ADJECTIVES)} {c(W.NOUNS)}".capitalize()
    if form == 1:
        return f"the {topic} {c(W.VERBS)} {c(W.ADVERBS)}".capitalize()
    if form == 2:
        return f"{c(W.PREPOSITIONS)} the {c(W.NOUNS)}, {c(W.ADJECTIVES)} and {c(W.ADJECTIVES)}".capitalize()
    return f"where {c(W.NOUNS)} {c(W.VERBS)} the {c(W.NOUNS)}".capitalize()


def _title(rng: random.Random, topic: str) -> str:
    return f"{rng.choice(W.ADJECTIVES).title()} {rng.choice(W.NOUNS).title()}s and {topic.title()}"


def _stanzas(rng: random.Random, topic: str, stanzas: tuple[int, int], lines: int) -> str:
    return "\n\n".join("\n".join(_line(rng, topic) for _ in range(lines)) for _ in range(rng.randint(*stanzas)))


def compose(fmt: str, topic: str, rng: random.Random) -> str:
    """One piece of writing in `fmt` about `topic`."""
    c = rng.choice
    if fmt == "poem":
        return f"**{_title(rng, topic)}**\n\n" + _stanzas(rng, topic, (3, 6), 4)
    if fmt == "haiku":
        return "\n".join(_line(rng, topic) for _ in range(3))
    if fmt == "limerick":
        return "\n".join(_line(rng, topic) for _ in range(5))
    if fmt == "sonnet":
        return f"**{_title(rng, topic)}**\n\n" + "\n".join(_line(rng, topic) for _ in range(14))
    if fmt == "song":
        chorus = "\n".join(_line(rng, topic) for _ in range(4))
        verses = [f"[Verse {v}]\n" + "\n".join(_line(rng, topic) for _ in range(4)) for v in range(1, rng.randint(3, 4))]
        return "\n\n".join(f"{v}\n\n[Chorus]\n{chorus}" for v in verses)
    if fmt == "riddle":
        return "\n".join(_line(rng, topic) for _ in range(rng.randint(4, 6))) + f"\n\nWhat am I? Answer: {topic}."
    if fmt == "social media post":
        tags = " ".join(f"#{w.replace(' ', '')}" for w in (topic, c(W.NOUNS), c(W.ADJECTIVES)))
        return _paragraph(rng, topic, 1, 3) + f"\n\n{tags}"
    if fmt == "letter":
        return f"Dear {c(W.NAMES)},\n\n" + "\n\n".join(_paragraph(rng, topic) for _ in range(rng.randint(2, 4))) \
            + f"\n\nYours {c(W.ADVERBS)},\n{c(W.NAMES)}"
    if fmt == "recipe":
        items = "\n".join(f"- {rng.randint(1, 4)} {c(W.ADJECTIVES)} {c(W.NOUNS)}s" for _ in range(rng.randint(4, 8)))
        steps = "\n".join(f"{i}. {_sentence(rng, topic)}" for i in range(1, rng.randint(5, 9)))
        return f"# {_title(rng, topic)}\n\n## Ingredients\n{items}\n\n## Steps\n{steps}"
    if fmt == "podcast script":
        host, guest = rng.sample(W.NAMES, 2)
        return "\n\n".join(f"{(host, guest)[i % 2].upper()}: {_paragraph(rng, topic, 1, 3)}" for i in range(rng.randint(4, 9)))
    if fmt == "product description":
        bullets = "\n".join(f"- {_sentence(rng, topic)}" for _ in range(rng.randint(3, 6)))
        return f"{_title(rng, topic)}\n\n{_paragraph(rng, topic)}\n\n{bullets}"
    if fmt == "blog post":
        sections = "\n\n".join(f"## {_title(rng, topic)}\n\n{_paragraph(rng, topic)}" for _ in range(rng.randint(2, 4)))
        return f"# {_title(rng, topic)}\n\n{_paragraph(rng, topic)}\n\n{sections}"
    # prose: short story, essay, speech, news article, diary entry, movie review, fable, travel guide
    head = {"diary entry": f"Day {rng.randint(1, 365)}", "speech": "Friends and neighbors,",
            "news article": f"{_title(rng, topic).upper()}"}.get(fmt, f"**{_title(rng, topic)}**")
    return head + "\n\n" + "\n\n".join(_paragraph(rng, topic) for _ in range(rng.randint(3, 6)))


def request(fmt: str, topic: str) -> str:
    return f"write a {fmt} about {topic}"


def question(prefix: str, i: int, fmt: str, topic: str) -> str:
    return (f"Reproduce the {ordinal(i)} {fmt} about {topic} from this conversation (counting from 1), "
            f"word for word, and begin your reply with {prefix}. Do not write anything else.")


# ---- measuring -----------------------------------------------------------------------------

class Measure:
    """Token cost of each message under one measure. `content`: tokens of the message content,
    plus the answer's tokens (OpenAI-MRCR's bin measure). `chat`: tokens the message adds to the
    prompt rendered by the model's chat template (specials and role headers included), plus the
    template's fixed part and generation prompt; the answer is not part of a prompt."""

    def __init__(self, counter: TokenCounter, mode: str):
        if mode not in MEASURES:
            raise ValueError(f"measure must be one of {MEASURES}, got {mode!r}")
        self.counter, self.mode = counter, mode
        self.overhead = {"user": 0, "assistant": 0}
        self.fixed = 0
        if mode == "chat":
            tok = getattr(counter, "tokenizer", None)
            if tok is None or not hasattr(tok, "render_chat"):
                raise ValueError(f"measure 'chat' needs a model tokenizer with a chat template, not {counter.name}")
            n = lambda msgs, gen=False: len(tok.encode(tok.render_chat(msgs, add_generation_prompt=gen)))
            empty = n([])
            for role in self.overhead:
                self.overhead[role] = n([{"role": role, "content": "x"}]) - empty - len(tok.encode("x"))
            self.fixed = n([], gen=True)

    def tokens(self, text: str) -> int:
        return len(self.counter.encode(text))

    def message(self, role: str, content: str) -> int:
        return self.tokens(content) + self.overhead[role]

    def answer(self, answer: str) -> int:
        return self.tokens(answer) if self.mode == "content" else 0

    def cut(self, text: str, tokens: int) -> str:
        ids = self.counter.encode(text)
        return text if len(ids) <= tokens else self.counter.decode(ids[:max(tokens, 0)])


# ---- writing ---------------------------------------------------------------------------------

class _PromptWriter:
    """Writes `"prompt": "<json list of messages>"` piece by piece: each message is JSON-encoded,
    then escaped as part of the outer JSON string, as json.dumps(json.dumps(messages)) would."""

    def __init__(self, out: TextIO):
        self.out, self.count, self.chars = out, 0, 0
        out.write('{"prompt": "[')

    def add(self, role: str, content: str) -> int:
        piece = json.dumps({"role": role, "content": content})
        self.out.write(json.dumps(", " + piece if self.count else piece)[1:-1])
        self.count += 1
        self.chars += len(content)
        return self.count - 1

    def close(self) -> None:
        self.out.write(']"')


def write_sample(out: TextIO, spec: SampleSpec, measure: Measure) -> dict[str, Any]:
    """Write one sample as a JSON line; returns its fields other than the prompt."""
    if spec.n_needles < 1:
        raise ValueError(f"n_needles must be >= 1, got {spec.n_needles}")
    if spec.target_tokens < MIN_TARGET:
        raise ValueError(f"target_tokens must be >= {MIN_TARGET}, got {spec.target_tokens}")
    rng = random.Random(f"m1bench-mrcr/{GENERATOR_VERSION}/{spec.seed}/{spec.target_tokens}/{spec.n_needles}")
    fmt, topic = rng.choice(W.FORMATS), rng.choice(W.TOPICS)
    prefix = "".join(rng.choices(PREFIX_ALPHABET, k=10))
    want = rng.randint(1, spec.n_needles)
    ask = request(fmt, topic)
    final_q = question(prefix, want, fmt, topic)
    # Needles take at most half of the target between them, so short targets stay possible with
    # long pieces (or with a byte-level tokenizer): a longer piece is cut to its share.
    share = max(16, (spec.target_tokens // 2 - measure.message("user", final_q)) // spec.n_needles
                - measure.message("user", ask) - measure.overhead["assistant"])
    needles = [measure.cut(compose(fmt, topic, rng), share).rstrip() for _ in range(spec.n_needles)]
    answer = prefix + needles[want - 1]

    needle_costs = [measure.message("user", ask) + measure.message("assistant", t) for t in needles]
    fixed = measure.fixed + measure.message("user", final_q) + measure.answer(answer)
    budget = spec.target_tokens - fixed - sum(needle_costs)  # tokens for the distractor turns
    if budget < TAIL:  # the distractors fill the rest; at least one must fit to land on the target
        raise ValueError(f"target_tokens {spec.target_tokens} is too small for {spec.n_needles} needles: they and the "
                         f"question take {fixed + sum(needle_costs)} tokens, {TAIL} more are needed for distractors")
    at = sorted(rng.random() * budget for _ in range(spec.n_needles))  # needle j goes in once this many distractor tokens are written

    writer = _PromptWriter(out)
    used = 0
    placed: list[int] = []

    def place_due(force: bool = False) -> None:
        while len(placed) < spec.n_needles and (force or used >= at[len(placed)]):
            writer.add("user", ask)
            placed.append(writer.add("assistant", needles[len(placed)]))

    while True:
        place_due()
        f, t = _distractor(rng, fmt, topic)
        user, reply = request(f, t), compose(f, t, rng)
        cost_user, cost_reply = measure.message("user", user), measure.message("assistant", reply)
        left = budget - used
        after = left - cost_user - cost_reply
        if after == 0 or after >= TAIL:
            writer.add("user", user)
            writer.add("assistant", reply)
            used += cost_user + cost_reply
            continue
        # The last distractor: its answer grown or cut to exactly the tokens left, so the sample
        # never ends on a gap too small for another turn.
        room = left - cost_user - measure.overhead["assistant"]
        if room >= 1:
            while measure.tokens(reply) < room:
                reply += "\n\n" + _paragraph(rng, t)
            reply = measure.cut(reply, room)
            writer.add("user", user)
            writer.add("assistant", reply)
            used += cost_user + measure.message("assistant", reply)
        break
    place_due(force=True)
    writer.add("user", final_q)
    writer.close()
    # n_chars: characters of the prompt's message contents (the dataset card does not define it further)
    fields = {
        "answer": answer, "random_string_to_prepend": prefix, "n_needles": spec.n_needles,
        "desired_msg_index": placed[want - 1], "total_messages": writer.count, "n_chars": writer.chars,
        "n_tokens": fixed + sum(needle_costs) + used, "target_tokens": spec.target_tokens,
        "tokenizer": measure.counter.name, "measure": measure.mode, "seed": spec.seed,
        "generator": f"m1bench-mrcr/{GENERATOR_VERSION}", "format": fmt, "topic": topic, "needle_index": want,
        "needle_message_indices": placed,
    }
    for k, v in fields.items():
        out.write(f", {json.dumps(k)}: {json.dumps(v)}")
    out.write("}\n")
    return fields


def _distractor(rng: random.Random, fmt: str, topic: str) -> tuple[str, str]:
    """A request other than the needle's: a fifth share its format, a fifth its topic."""
    while True:
        r = rng.random()
        f = fmt if r < 0.2 else rng.choice(W.FORMATS)
        t = topic if 0.2 <= r < 0.4 else rng.choice(W.TOPICS)
        if (f, t) != (fmt, topic):
            return f, t


def generate_file(path: str | Path, specs: list[SampleSpec], measure: Measure,
                  on_sample: Callable[[SampleSpec, dict[str, Any], float], None] | None = None) -> list[dict[str, Any]]:
    """Write samples to a JSONL file (atomically: a partial file is never left under `path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    metas = []
    with open(tmp, "w", encoding="utf-8") as out:
        for spec in specs:
            t0 = time.perf_counter()
            meta = write_sample(out, spec, measure)
            metas.append(meta)
            if on_sample:
                on_sample(spec, meta, time.perf_counter() - t0)
    tmp.replace(path)
    return metas


def specs_for(lengths: list[int], needles: list[int], per_cell: int, seed: int) -> list[SampleSpec]:
    return [SampleSpec(length, n, seed * 1_000_003 + i) for length in lengths for n in needles for i in range(per_cell)]


def counter_for(name: str) -> TokenCounter:
    """'o200k_base', 'tiny' or a checkpoint directory."""
    from m1bench.suites.mrcr.tokens import O200K, load_model_counter, load_o200k

    return load_o200k() if name == O200K else load_model_counter(name)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    p = argparse.ArgumentParser(prog="python -m m1bench.suites.mrcr.generator", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", required=True, help="target lengths in tokens")
    p.add_argument("--needles", type=int, nargs="+", default=[2, 4, 8], help="needle counts (default 2 4 8)")
    p.add_argument("--per-cell", type=int, default=1, help="samples per (length, needles) (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokenizer", default="o200k_base", help="o200k_base, tiny, or a checkpoint directory")
    p.add_argument("--measure", choices=MEASURES, default="content", help="content (OpenAI-MRCR bins) or chat (model prompt)")
    p.add_argument("--out", required=True, help="output JSONL file")
    args = p.parse_args(argv)
    console = Console(stderr=True)
    measure = Measure(counter_for(args.tokenizer), args.measure)
    specs = specs_for(args.lengths, args.needles, args.per_cell, args.seed)
    table = Table(title=f"MRCR samples -> {args.out}")
    for col in ("target", "needles", "tokens", "error %", "messages", "seconds"):
        table.add_column(col, justify="right")
    with Progress(console=console) as progress:
        bar = progress.add_task("generating", total=sum(s.target_tokens for s in specs))

        def done(spec: SampleSpec, meta: dict[str, Any], secs: float) -> None:
            progress.advance(bar, spec.target_tokens)
            err = 100 * (meta["n_tokens"] - spec.target_tokens) / spec.target_tokens
            table.add_row(str(spec.target_tokens), str(spec.n_needles), str(meta["n_tokens"]), f"{err:+.3f}",
                          str(meta["total_messages"]), f"{secs:.2f}")

        generate_file(args.out, specs, measure, done)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

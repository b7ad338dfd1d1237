"""The Michelangelo-style MRCR generator: lengths within 1% for several tokenizers, determinism,
the OpenAI-MRCR fields, needle structure, streaming."""
import io
import json
import re

import pytest

from m1bench.suites.mrcr.data import parse_row
from m1bench.suites.mrcr.generator import Measure, SampleSpec, generate_file, request, write_sample
from m1bench.suites.mrcr.grading import grade
from m1bench.suites.mrcr.tokens import load_model_counter, load_o200k


@pytest.fixture(scope="module")
def o200k(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the BPE file is cached under a test home
        mp.setenv("M1BENCH_HOME", str(tmp_path_factory.mktemp("home")))
        return load_o200k()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from m1bench.model.tiny import ensure_tiny

    return load_model_counter(str(ensure_tiny(tmp_path_factory.mktemp("tiny"))))


class TrainedBPE:
    """A third, unrelated tokenizer: byte-level BPE with merges, trained here on generator text."""

    def __init__(self, text: str):
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        self.tok = Tokenizer(models.BPE())
        self.tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self.tok.decoder = decoders.ByteLevel()
        self.tok.train_from_iterator([text], trainers.BpeTrainer(vocab_size=800, show_progress=False,
                                                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        self.name = "trained byte-level BPE (800)"

    def encode(self, text):
        return self.tok.encode(text).ids

    def decode(self, ids):
        return self.tok.decode(ids)


def _sample(counter, mode, target, needles, seed=3):
    buf = io.StringIO()
    meta = write_sample(buf, SampleSpec(target, needles, seed), Measure(counter, mode))
    row = json.loads(buf.getvalue())
    return row, json.loads(row["prompt"]), meta


def _content_tokens(encode, messages, answer):
    return sum(len(encode(m["content"])) for m in messages) + len(encode(answer))


@pytest.mark.parametrize("target,needles", [(4096, 2), (20000, 4), (65536, 8)])
def test_o200k_lengths_within_one_percent(o200k, target, needles):
    import tiktoken

    enc = tiktoken.get_encoding("o200k_base")  # counted again here, independently of the generator
    row, messages, meta = _sample(o200k, "content", target, needles)
    real = _content_tokens(enc.encode_ordinary, messages, row["answer"])
    assert real == meta["n_tokens"]
    assert abs(real - target) <= 0.01 * target


@pytest.mark.parametrize("target", [8192, 30000])
def test_model_tokenizer_chat_lengths_within_one_percent(tiny, target):
    row, messages, meta = _sample(tiny, "chat", target, 2)
    tok = tiny.tokenizer
    real = len(tok.encode(tok.render_chat(messages, add_generation_prompt=True)))  # the request's prompt tokens
    assert real == meta["n_tokens"]
    assert abs(real - target) <= 0.01 * target


def test_third_tokenizer_content_lengths(o200k):
    _, messages, _ = _sample(o200k, "content", 6000, 2, seed=99)
    bpe = TrainedBPE("\n".join(m["content"] for m in messages))
    for target in (5000, 25000):
        row, messages, meta = _sample(bpe, "content", target, 4)
        real = _content_tokens(bpe.encode, messages, row["answer"])
        assert abs(real - target) <= 0.01 * target, (real, target)


def test_deterministic_and_seeded(o200k):
    a, _, _ = _sample(o200k, "content", 9000, 4, seed=7)
    b, _, _ = _sample(o200k, "content", 9000, 4, seed=7)
    c, _, _ = _sample(o200k, "content", 9000, 4, seed=8)
    assert a == b
    assert a["prompt"] != c["prompt"]


def test_openai_mrcr_fields_and_needles(o200k):
    row, messages, meta = _sample(o200k, "content", 40000, 8)
    parsed = parse_row(row, "gen:1")  # the OpenAI-MRCR loader takes it unchanged
    assert parsed.n_needles == 8 and parsed.messages == messages
    assert row["total_messages"] == len(messages)
    assert row["n_chars"] == sum(len(m["content"]) for m in messages)
    prefix = row["random_string_to_prepend"]
    assert re.fullmatch(r"[A-Za-z0-9]{10}", prefix)
    assert [m["role"] for m in messages[:-1]] == ["user", "assistant"] * ((len(messages) - 1) // 2)
    ask = request(row["format"], row["topic"])
    asks = [i for i, m in enumerate(messages) if m["role"] == "user" and m["content"] == ask]
    assert len(asks) == 8 and [i + 1 for i in asks] == row["needle_message_indices"]
    assert row["desired_msg_index"] == row["needle_message_indices"][row["needle_index"] - 1]
    assert row["answer"] == prefix + messages[row["desired_msg_index"]]["content"]
    assert prefix in messages[-1]["content"] and row["format"] in messages[-1]["content"]
    # hard negatives: the needle's format about other topics, and its topic in other formats
    users = [m["content"] for m in messages if m["role"] == "user"]
    assert any(u.startswith(f"write a {row['format']} about ") and u != ask for u in users)
    assert any(u.endswith(f" about {row['topic']}") and u != ask for u in users)
    # the grader: the right needle scores 1, another needle (same request) less
    assert grade(row["answer"], row["answer"], prefix) == 1.0
    other = next(i for i in row["needle_message_indices"] if i != row["desired_msg_index"])
    assert grade(prefix + messages[other]["content"], row["answer"], prefix) < 0.9


def test_streams_to_disk(o200k, tmp_path):
    writes = []

    class Spy(io.StringIO):
        def write(self, s):
            writes.append(len(s))
            return super().write(s)

    out = Spy()
    meta = write_sample(out, SampleSpec(60000, 2, 1), Measure(o200k, "content"))
    assert len(writes) > meta["total_messages"]  # one write per message at least, never the whole prompt
    assert max(writes) < len(out.getvalue()) / 20
    path = tmp_path / "s.jsonl"
    metas = generate_file(path, [SampleSpec(5000, 2, 1), SampleSpec(6000, 4, 2)], Measure(o200k, "content"))
    assert [json.loads(line)["target_tokens"] for line in path.read_text().splitlines()] == [5000, 6000]
    assert len(metas) == 2 and not (tmp_path / "s.jsonl.partial").exists()


def test_short_targets_with_long_pieces(tiny):
    """Byte-level tokens make pieces long; the needles are cut to their share, so even the shortest
    target with 8 needles lands on the length."""
    for seed in range(3):
        row, messages, meta = _sample(tiny, "chat", 2048, 8, seed)
        assert meta["n_tokens"] == 2048 and len(row["needle_message_indices"]) == 8


def test_clear_errors(tiny):
    with pytest.raises(ValueError, match="target_tokens must be >= 2048"):
        write_sample(io.StringIO(), SampleSpec(1000, 2, 0), Measure(tiny, "chat"))
    with pytest.raises(ValueError, match="measure 'chat' needs a model tokenizer"):
        Measure(load_o200k(), "chat")

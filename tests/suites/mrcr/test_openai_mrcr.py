"""OpenAI-MRCR loading: the parquet layout, needle and bin selection, bins as specified (o200k_base
prompt+answer tokens), the model-tokenizer fallback, context-window skipping, data errors."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tiktoken

from m1bench.suites import get_suite
from m1bench.suites.mrcr import tokens as mrcr_tokens
from m1bench.suites.mrcr.grading import BIN_LABELS, bin_label
from m1bench.suites.source import DataError
from tests.support.fixtures.mrcr.layout import generated_row, short_row, write_layout


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """Rows in three bins and three needle counts, laid out as the hub repository."""
    o200k = mrcr_tokens.load_o200k()
    rows = [generated_row(o200k, t, n, seed) for seed, (t, n) in enumerate(
        [(5000, 2), (7000, 4), (9000, 2), (12000, 8), (20000, 4), (3000, 2)])]
    return write_layout(tmp_path_factory.mktemp("mrcr"), rows), rows


def _opts(**kw):
    suite = get_suite("openai_mrcr")
    opts = {k: o.default for k, o in suite.all_options().items()}
    opts.update(kw)
    return suite, opts


def _official_tokens(row):
    enc = tiktoken.get_encoding("o200k_base")
    msgs = json.loads(row["prompt"])
    return sum(len(enc.encode(m["content"])) for m in msgs) + len(enc.encode(row["answer"]))


def test_bins_are_o200k_prompt_plus_answer(layout, tmp_path, monkeypatch):
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path))
    root, rows = layout
    suite, opts = _opts(data=str(root), bins=["<4K", *BIN_LABELS])
    problems, info = suite.load(opts)
    assert info["token_counter"]["name"] == "o200k_base" and info["token_counter"]["official"]
    assert info["files"] == ["2needle/2needle_0.parquet", "4needle/4needle_0.parquet", "8needle/8needle_0.parquet"]
    assert info["rows"] == 6 and len(info["content_hash"]) == 16
    by_answer = {r["answer"]: r for r in rows}
    for p in problems:
        row = by_answer[p.target["answer"]]
        assert p.meta["tokens"] == _official_tokens(row)
        assert p.meta["bin"] == bin_label(_official_tokens(row))
        assert p.target["prefix"] == row["random_string_to_prepend"] and p.meta["n_needles"] == row["n_needles"]
    assert sorted(p.meta["bin"] for p in problems) == ["16K-32K", "4K-8K", "4K-8K", "8K-16K", "8K-16K", "<4K"]
    assert "128K" in info["aggregates"] and "(65536, 131072]" in info["aggregates"]["128K"]
    # a second load reads the token counts from the cache and gives the same problems
    again, _ = suite.load(opts)
    assert [p.meta["tokens"] for p in again] == [p.meta["tokens"] for p in problems]


def test_needle_and_bin_selection(layout, tmp_path, monkeypatch):
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path))
    root, _ = layout
    suite, opts = _opts(data=str(root), needles=[2], bins=["4K-8K", "8K-16K"])
    problems, info = suite.load(opts)
    assert {(p.meta["n_needles"], p.meta["bin"]) for p in problems} == {(2, "4K-8K"), (2, "8K-16K")}
    assert info["selection"] == {"needles": [2], "bins": ["4K-8K", "8K-16K"], "limit": None, "context_window": None}
    assert "nothing skipped" in info["skipped_over_context_window"]["note"]
    suite, opts = _opts(data=str(root), limit=1)
    assert len(suite.load(opts)[0]) == 1
    with pytest.raises(DataError, match="option needles"):
        suite.load(_opts(data=str(root), needles=[3])[1])
    with pytest.raises(DataError, match="option bins"):
        suite.load(_opts(data=str(root), bins=["2K-4K"])[1])


def test_requests_over_the_context_window_are_skipped_and_counted(layout, tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path))
    root, rows = layout
    suite, opts = _opts(data=str(root), bins=["<4K", *BIN_LABELS], model=str(tiny_dir), context_window=40000)
    problems, info = suite.load(opts)
    from m1bench.model.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_dir)
    model_tokens = {r["answer"]: len(tok.encode(tok.render_chat(json.loads(r["prompt"])))) for r in rows}
    over = [r for r in rows if model_tokens[r["answer"]] > 40000]
    assert over and len(over) < len(rows)
    skipped = info["skipped_over_context_window"]
    assert skipped["count"] == len(over) and skipped["context_window"] == 40000
    assert "chat-rendered" in skipped["counted_as"]
    assert sum(skipped["by_bin_needles"].values()) == len(over)
    assert len(problems) == len(rows) - len(over) == info["to_send"]
    assert all(p.meta["window_tokens"] == model_tokens[p.target["answer"]] <= 40000 for p in problems)


def test_fallback_to_the_model_tokenizer_says_so(layout, tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path))

    def unavailable():
        raise mrcr_tokens.TokenizerUnavailable("no BPE file offline")

    monkeypatch.setattr(mrcr_tokens, "load_o200k", unavailable)
    root, rows = layout
    suite, opts = _opts(data=str(root), bins=["<4K", *BIN_LABELS, ">1M"], model=str(tiny_dir))
    problems, info = suite.load(opts)
    facts = info["token_counter"]
    assert not facts["official"] and "no BPE file offline" in facts["note"] and "not comparable" in facts["note"]
    assert "model tokenizer" in info["aggregates"]["128K"]
    from m1bench.model.tokenizer import load_tokenizer

    tok = load_tokenizer(tiny_dir)
    for p in problems:  # bins now count the model's tokens of the same fields
        row = next(r for r in rows if r["answer"] == p.target["answer"])
        want = sum(len(tok.encode(m["content"])) for m in json.loads(row["prompt"])) + len(tok.encode(row["answer"]))
        assert p.meta["tokens"] == want and p.meta["bin"] == bin_label(want)
    with pytest.raises(mrcr_tokens.TokenizerUnavailable, match="not available offline"):
        suite.load(_opts(data=str(root), tokenizer="o200k_base", model=str(tiny_dir))[1])
    with pytest.raises(mrcr_tokens.TokenizerUnavailable, match="set option `model`"):
        suite.load(_opts(data=str(root))[1])


def test_o200k_file_is_tiktokens_own(tmp_path, monkeypatch):
    """The bundled BPE file is verified against tiktoken's expected hash and loaded by tiktoken."""
    import hashlib

    data = mrcr_tokens.bundled_o200k_bytes()
    assert hashlib.sha256(data).hexdigest() == mrcr_tokens.O200K_SHA256
    import inspect

    import tiktoken_ext.openai_public as public

    assert mrcr_tokens.O200K_SHA256 in inspect.getsource(public.o200k_base)
    enc = mrcr_tokens.load_o200k()
    assert enc.encode("hello world") == [24912, 2375]


def test_bad_rows_name_file_row_and_field(tmp_path, monkeypatch):
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path))
    suite = get_suite("openai_mrcr")
    good = short_row(2, 0)
    bad = dict(good, prompt="[{'role': 'user'")
    (tmp_path / "rows.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"rows.jsonl:2: field 'prompt' is not a JSON list"):
        suite.load(_opts(data=str(tmp_path / "rows.jsonl"), bins=["<4K"])[1])
    no_needles = {k: v for k, v in good.items() if k != "n_needles"}
    (tmp_path / "rows.jsonl").write_text(json.dumps(no_needles) + "\n")
    with pytest.raises(DataError, match=r"rows.jsonl:1: field 'n_needles' is missing"):
        suite.load(_opts(data=str(tmp_path / "rows.jsonl"), bins=["<4K"])[1])
    t = pa.Table.from_pylist([{k: v for k, v in good.items() if k != "answer"}])
    pq.write_table(t, tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"x.parquet: missing column\(s\) answer"):
        suite.load(_opts(data=str(tmp_path / "x.parquet"), bins=["<4K"])[1])
    with pytest.raises(DataError, match="no such file"):
        suite.load(_opts(data=str(tmp_path / "nope.parquet"))[1])


def test_hub_unreachable_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    suite, opts = _opts(data="openai/mrcr", revision="0" * 40)
    with pytest.raises(DataError, match="cannot read it from the Hugging Face hub"):
        suite.load(opts)

"""The `m1bench profile` commands end to end (small sizes) and the server profiler against a stub endpoint."""
import asyncio
import json
import socket

import pytest
import torch

from m1bench.harness.bench.stub_server import StubServer, words_responder
from m1bench.harness.cli import main
from m1bench.harness.profile.latency import build_pair, stats
from m1bench.harness.profile.server import profile_server
from m1bench.model.presets import preset


def test_flops_command_writes_claim_json_and_plots(tmp_path, capsys):
    out = tmp_path / "flops"
    main(["profile", "flops", "--max-gen", "128K", "--points", "17", "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["models"]) == {"m1", "m1-softmax", "deepseek-r1"}  # M1, its twin and R1 by default
    claim = {r["gen_tokens"]: r for r in data["paper_claim"]}
    assert set(claim) == {32768, 65536, 100_000, 131072}
    assert claim[65536]["cumulative_naive"] < 0.5 and claim[65536]["paper_claim"] == "< 50%"
    gen = data["curves"]["gen_tokens"]
    assert gen[0] == 1 and gen[-1] == 131072 and gen == sorted(set(gen))  # spread evenly on the log axes
    assert out.with_suffix(".png").stat().st_size > 10_000 and out.with_suffix(".svg").exists()
    assert data["plots"] == ["flops.png", "flops.svg"]  # beside the JSON, relative to it
    printed = capsys.readouterr().out
    assert "about 25%" in printed and "44.5%" in printed  # the claim table is printed


def test_flops_claim_rows_follow_prompt_and_max_gen(tmp_path, capsys):
    """A 1000-token prompt and 1M generated tokens: the ratios are at those, not the default rows."""
    from m1bench.model import flops as F
    from m1bench.model.arch import load_spec

    out = tmp_path / "long"
    main(["profile", "flops", "--prompt", "1000", "--max-gen", "1M", "--points", "9", "--out", str(out)])
    claim = {r["gen_tokens"]: r for r in json.loads(out.with_suffix(".json").read_text())["paper_claim"]}
    assert set(claim) == {32768, 65536, 100_000, 131072, 1 << 20}
    want = F.flops_ratio(load_spec("m1"), load_spec("deepseek-r1"), 1 << 20, prompt=1000)
    assert claim[1 << 20]["cumulative_naive"] == pytest.approx(float(want["cumulative"]))
    assert claim[1 << 20]["prompt"] == 1000 and claim[65536]["paper_claim"] == ""  # the paper's claims: no prompt
    assert "after a 1000-token prompt" in capsys.readouterr().out


def test_flops_command_takes_a_config_path(tmp_path):
    cfg = tmp_path / "qwen" / "config.json"
    cfg.parent.mkdir()
    from m1bench.model.published import QWEN3_235B_A22B
    cfg.write_text(json.dumps(QWEN3_235B_A22B))
    out = tmp_path / "f"
    main(["profile", "flops", "--models", f"m1,{cfg}", "--max-gen", "4096", "--points", "5", "--out", str(out)])
    assert set(json.loads(out.with_suffix(".json").read_text())["models"]) == {"m1", str(cfg)}


def test_count_command(tmp_path):
    out = tmp_path / "count"
    main(["profile", "count", "--chunks", "40,7", "--decode", "1", "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["max_rel_diff"] <= 0.02 and set(data["models"]) == {"tiny", "tiny-softmax"}


def test_latency_command_small(tmp_path):
    out = tmp_path / "lat"
    main(["profile", "latency", "--device", "cpu", "--preset", "tiny", "--contexts", "64,128", "--repeats", "2",
          "--warmup", "0", "--decode-steps", "2", "--chunk", "100", "--kernel-contexts", "64",
          "--kernel-heads", "2", "--kernel-kv-heads", "1", "--kernel-head-dim", "16", "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    for variant in ("hybrid", "softmax-twin"):
        rows = data["model"][variant]
        assert [r["context"] for r in rows] == [64, 128]
        assert all(r["prefill_s"]["n"] == 2 and r["decode_s"]["n"] == 2 and r["prefill_s"]["median"] > 0 for r in rows)
    assert [s["context"] for s in data["speedup"]] == [64, 128]
    assert {(r["phase"], r["impl"]) for r in data["kernels"]} == {("prefill", "lightning"), ("decode", "lightning"),
                                                                 ("prefill", "sdpa"), ("decode", "sdpa")}
    assert data["settings"]["dtype"] == "float32" and data["environment"]["device"].startswith("CPU")
    assert out.with_suffix(".png").exists() and (tmp_path / "lat_kernels.png").exists()


def test_kernels_bench_json_folds_in(tmp_path):
    from m1bench.harness.cli.profile import _fold_kernel_bench
    bench = tmp_path / "lightning.json"
    bench.write_text(json.dumps({"prefill": {"rows": [{"T": 16384, "ours_ms": 0.38, "sdpa_ms": 6.6},
                                                      {"T": 32768, "ours_ms": 0.77, "fla_ms": 1.5}]}}))
    rows = _fold_kernel_bench([str(bench)])
    assert {(r["impl"], r["context"], r["median_ms"]) for r in rows} == {
        ("lightning (kernels bench)", 16384, 0.38), ("sdpa (kernels bench)", 16384, 6.6),
        ("lightning (kernels bench)", 32768, 0.77), ("fla (kernels bench)", 32768, 1.5)}
    assert all(r["phase"] == "prefill" for r in rows)


def test_twin_shares_weights_with_the_hybrid():
    pair = build_pair(preset("tiny"), "cpu", torch.float32)
    h, t = pair["hybrid"].state_dict(), pair["softmax-twin"].state_dict()
    shared = [k for k in h if k in t]
    assert "lm_head.weight" in shared and any("block_sparse_moe" in k for k in shared)
    assert all(torch.equal(h[k], t[k]) for k in shared)
    assert any(k.endswith("q_proj.weight") and k.startswith("model.layers.0.") for k in t)  # a new softmax layer


def test_stats():
    s = stats([3.0, 1.0, 2.0, 10.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.5, 1.0, 10.0, 4)


def test_server_profiler_measures_the_stub_timing():
    ttft, tpot = 0.03, 0.006
    with StubServer(words_responder, ttft_s=ttft, tpot_s=tpot, prefill_s_per_word=1e-4) as stub:
        rows, client = asyncio.run(profile_server(stub.url, "stub", [20, 400], [1, 3], 3, 5, warmup=1))
        assert len(stub.requests) == 1 + 2 * (3 + 3)
    assert [(r["prompt_words"], r["concurrency"]) for r in rows] == [(20, 1), (20, 3), (400, 1), (400, 3)]
    for r in rows:
        assert r["ok"] == 3 and r["errors"] == 0 and r["output_tokens"] == 15
        # lower bounds only: the stub sleeps at least this long (correctness of what is measured, not speed)
        assert r["ttft_p50_s"] >= ttft + 1e-4 * r["prompt_words"]
        assert r["tpot_p50_s"] >= tpot * 0.9
        assert r["e2e_p50_s"] >= r["ttft_p50_s"] + 4 * tpot * 0.9
        assert r["prompt_tokens"] == r["prompt_words"] + 1  # the stub counts words; the prompt has a seed tag
    assert client["endpoints"][0]["served"] == 13


def test_server_profiler_counts_failures():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rows, _ = asyncio.run(profile_server(f"http://127.0.0.1:{port}/v1", "none", [10], [2], 2, 4, timeout_s=5, warmup=0))
    assert rows[0]["ok"] == 0 and rows[0]["errors"] == 2 and rows[0]["error_kinds"] == ["connection"]
    assert rows[0]["ttft_p50_s"] is None


def test_server_profiler_counts_errors_inside_the_stream():
    with StubServer(words_responder, fail_after_tokens=2) as stub:
        rows, _ = asyncio.run(profile_server(stub.url, "stub", [10], [2], 3, 5, warmup=0))
    assert rows[0]["ok"] == 0 and rows[0]["errors"] == 3 and rows[0]["error_kinds"] == ["server"]


def test_server_command_with_stub(tmp_path):
    out = tmp_path / "srv"
    main(["profile", "server", "--stub", "--prompt-words", "16", "--concurrency", "1,2", "--requests", "2",
          "--max-tokens", "4", "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    assert [l["concurrency"] for l in data["levels"]] == [1, 2] and data["endpoint"].startswith("local stub")
    assert out.with_suffix(".png").exists()


def test_server_command_needs_a_target():
    with pytest.raises(SystemExit, match="--endpoint"):
        main(["profile", "server"])


def test_small_profile_for_the_main_job(tmp_path):
    from m1bench.harness.profile.summary import small_profile
    out = small_profile(tmp_path, contexts=(64, 128))
    assert out["flops_ratio_m1_over_deepseek_r1"]["65536"]["cumulative"] < 0.5
    assert set(out["tiny_latency"]) == {"hybrid", "softmax-twin"}
    assert all(r["prefill_s"] > 0 and r["decode_ms"] > 0 for rows in out["tiny_latency"].values() for r in rows)
    assert (tmp_path / "flops.png").exists()
    json.dumps(out)


def test_replot_reads_latency_and_server_json(tmp_path):
    out = tmp_path / "srv"
    main(["profile", "server", "--stub", "--prompt-words", "8", "--concurrency", "1", "--requests", "1",
          "--max-tokens", "2", "--out", str(out)])
    before = out.with_suffix(".json").read_text()
    main(["profile", "replot", str(out.with_suffix(".json"))])
    assert out.with_suffix(".json").read_text() == before  # the input is left as it is
    again = json.loads((tmp_path / "srv_replot.json").read_text())
    assert again["plots"] == ["srv_replot.png", "srv_replot.svg"] and (tmp_path / "srv_replot.png").exists()
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"kind": "something"}))
    with pytest.raises(SystemExit, match="kind"):
        main(["profile", "replot", str(bad)])

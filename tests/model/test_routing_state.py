"""Expert-routing statistics and resumable long-input state."""
import pytest
import torch

from m1bench.model.checkpoint import load_model, save_checkpoint
from m1bench.model.generate import SamplingParams, continue_generation, generate
from m1bench.model.identity import checkpoint_hash
from m1bench.model.routing import aggregate
from m1bench.model.state_io import StateError, load_state, resumable_prefill, save_state
from m1bench.model.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_model(tiny_dir), load_tokenizer(tiny_dir)


def test_routing_counts_match_the_router_and_ignore_padding(tiny):
    model, tok = tiny
    prompts = [tok.encode("short"), tok.encode("a considerably longer prompt")]
    params = SamplingParams(max_new_tokens=6, temperature=0)
    batched = generate(model, tok, prompts, params, routing=model.routing_recorder())
    for prompt, out in zip(prompts, batched):
        alone = generate(model, tok, [prompt], params, routing=model.routing_recorder())[0]
        assert alone.routing == out.routing  # left padding and batch mates do not leak in
        fed = len(prompt) + len(out.token_ids) - 1  # the last sampled token is never fed back
        assert out.routing["tokens"] == fed
        assert all(sum(layer) == fed * 2 for layer in out.routing["counts"])
        assert all(sum(layer) == fed for layer in out.routing["top1_weight_hist"])
    # the counts are exactly the router's own top-2 choices on the layer-0 input
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        moe = model.model.layers[0].block_sparse_moe
        captured = {}
        hook = moe.register_forward_hook(lambda m, i, o: captured.setdefault("x", i[0]))  # the MoE's normed input
        model(ids)
        hook.remove()
        _, chosen = model.model.layers[0].block_sparse_moe.route(captured["x"][0])
    single = generate(model, tok, [prompts[0]], SamplingParams(max_new_tokens=1, temperature=0),
                      routing=model.routing_recorder())[0]
    assert single.routing["counts"][0] == torch.bincount(chosen.flatten(), minlength=4).tolist()
    total = aggregate([o.routing for o in batched])
    assert total["tokens"] == sum(o.routing["tokens"] for o in batched)


def test_routing_off_changes_nothing(tiny):
    model, tok = tiny
    p = [tok.encode("same output either way")]
    params = SamplingParams(max_new_tokens=8, seed=3)
    plain = generate(model, tok, p, params)[0]
    recorded = generate(model, tok, p, params, routing=model.routing_recorder())[0]
    assert plain.routing is None and plain.token_ids == recorded.token_ids
    assert all(layer.block_sparse_moe.recorder is None for layer in model.model.layers)


class Interrupted(Exception):
    pass


def test_interrupted_prefill_resumes_with_identical_logits(tiny, tiny_dir, tmp_path):
    model, tok = tiny
    tokens = torch.randint(0, 260, (300,), generator=torch.Generator().manual_seed(0)).tolist()
    ident = checkpoint_hash(tiny_dir)
    _, expected = resumable_prefill(model, tokens, ident, chunk_size=64)
    with torch.no_grad():
        torch.testing.assert_close(expected, model(torch.tensor([tokens]))[0, -1], atol=1e-5, rtol=1e-5)

    def die_after_three(done, total):
        if done >= 3 * 64:
            raise Interrupted
    state = tmp_path / "prefill.state"
    with pytest.raises(Interrupted):
        resumable_prefill(model, tokens, ident, save_to=state, chunk_size=64, progress=die_after_three)
    assert load_state(model, state, ident).length == 3 * 64
    seen = []
    cache, resumed = resumable_prefill(model, tokens, ident, save_to=state, load_from=state, chunk_size=64,
                                       progress=lambda done, total: seen.append(done))
    assert seen == [256, 300]  # only the unfinished chunks ran
    torch.testing.assert_close(resumed, expected, atol=0, rtol=0)
    out = continue_generation(model, tok, cache, resumed, SamplingParams(max_new_tokens=5, temperature=0), 300)
    ref = generate(model, tok, [tokens], SamplingParams(max_new_tokens=5, temperature=0))[0]
    assert out.token_ids == ref.token_ids


def test_state_refuses_another_model_or_prompt(tiny, tiny_dir, tmp_path):
    model, _ = tiny
    cache = model.new_cache(1)
    with torch.no_grad():
        model(torch.tensor([[5, 6, 7]]), cache)
    state = save_state(cache, tmp_path / "s", checkpoint_hash(tiny_dir), [5, 6, 7])
    other = tmp_path / "other"
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1
        save_checkpoint(model, other)
        model.lm_head.weight[0, 0] -= 1
    with pytest.raises(StateError, match="only loads into the model that made it"):
        load_state(model, state, checkpoint_hash(other))
    with pytest.raises(StateError, match="not the start of this prompt"):
        load_state(model, state, checkpoint_hash(tiny_dir), tokens=[5, 6, 8, 9])


def test_generate_cli_resumes_a_saved_prefill(tiny_dir, tmp_path, monkeypatch):
    from m1bench.harness.cli import build_parser

    def main(argv):  # like the console script, but hand back the Generation
        args = build_parser().parse_args(argv)
        return args.func(args)
    monkeypatch.setenv("M1BENCH_HOME", str(tmp_path / "home"))
    prompt = tmp_path / "long.txt"
    prompt.write_text("the quick brown fox jumps over the lazy dog. " * 12)
    base = ["generate", "--model", str(tiny_dir), "--prompt-file", str(prompt), "--temperature", "0",
            "--max-new-tokens", "6", "--chunk-size", "128"]
    state = tmp_path / "p.state"
    fresh = main(base)
    saved = main(base + ["--save-state", str(state)])
    resumed = main(base + ["--resume-state", str(state)])
    assert state.exists() and fresh.token_ids == saved.token_ids == resumed.token_ids


def test_run_with_routing_stats_aggregates_per_suite_and_plots(tiny_dir, tmp_path):
    """Through `m1bench run`: routing statistics in the records, their aggregate in the results, a
    heatmap in the report."""
    import json

    import pytest

    from m1bench.harness.cli import main as cli_main
    from m1bench.reports.routing import plot_heatmap, utilisation
    from tests.support import REPO

    config = tmp_path / "routing.toml"
    config.write_text(f'[run]\noutput_dir = "{tmp_path / "run"}"\n[model]\ncheckpoint = "{tiny_dir}"\nrouting_stats = true\n'
                      f'[sampling]\nmax_tokens = 4\n[suites.aime2024]\ndata = "{REPO / "suites/aime/demo.jsonl"}"\n'
                      'limit = 2\nsamples = 1\n')
    with pytest.raises(SystemExit) as done:
        cli_main(["run", str(config)])
    assert done.value.code == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    routing = results["suites"]["aime2024"]["routing"]
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    per_request = [r["completion"]["routing"] for r in records]
    assert len(per_request) == 2 and routing["tokens"] == sum(r["tokens"] for r in per_request)
    assert abs(utilisation(routing).sum(1) - 1).max() < 1e-9
    assert plot_heatmap(routing, tmp_path / "routing.png").stat().st_size > 1000
    report_json = next((tmp_path / "reports").rglob("report.json"))  # the run's report (conftest's tmp dir)
    report = json.loads(report_json.read_text())
    assert report["suites"]["aime2024"]["extra"]["routing"]["tokens"] == routing["tokens"]
    heatmap = [p for p in report["plots"] if p["name"] == "routing_aime2024"]
    assert heatmap and (report_json.parent / heatmap[0]["file"]).stat().st_size > 1000
    assert "aime2024: expert utilisation per MoE layer" in (report_json.parent / "report.html").read_text()

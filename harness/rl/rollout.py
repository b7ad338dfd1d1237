"""Group rollouts on the reference model and the trainable log-probs of their response tokens.

Sampling goes through `model.generate` (inference mode, temperature 1, no top-p/top-k, so the sampling
distribution is the policy itself); log-probs for the objectives are recomputed with a normal forward.
"""
from dataclasses import dataclass

import torch

from m1bench.model.generate import SamplingParams, generate
from m1bench.model.m1 import M1ForCausalLM
from m1bench.model.tokenizer import ChatTokenizer


@dataclass
class Sequences:
    """Prompts (left-padded to a common width P) followed by responses (right-padded to R)."""
    input_ids: torch.Tensor  # [B, P + R]
    attention_mask: torch.Tensor  # [B, P + R]; 0 on left padding only
    response_mask: torch.Tensor  # [B, R] bool; True on response tokens (EOS included when it ended)
    prompt_width: int  # P

    @property
    def responses(self) -> torch.Tensor:  # [B, R]
        return self.input_ids[:, self.prompt_width:]


@dataclass
class Rollouts:
    sequences: Sequences
    texts: list[str]  # decoded responses, EOS not included
    finished: list[bool]  # ended with EOS within the token budget


def pack(prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> Sequences:
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    if any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token")
    P, R = max(map(len, prompts)), max(1, max(map(len, responses)))
    ids = torch.full((len(prompts), P + R), pad_id, dtype=torch.long)
    attention = torch.ones_like(ids)
    response_mask = torch.zeros(len(prompts), R, dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        ids[i, P - len(p):P] = torch.tensor(p)
        attention[i, :P - len(p)] = 0
        ids[i, P:P + len(r)] = torch.tensor(r, dtype=torch.long)
        response_mask[i, :len(r)] = True
    return Sequences(ids, attention, response_mask, P)


def sample_groups(model: M1ForCausalLM, tokenizer: ChatTokenizer, prompts: list[str], group_size: int,
                  max_new_tokens: int, seed: int) -> Rollouts:
    """`group_size` samples of every prompt, rows grouped by prompt; sample j has seed `seed + j`."""
    prompt_ids = [tokenizer.encode(p) for p in prompts for _ in range(group_size)]
    params = [SamplingParams(max_new_tokens=max_new_tokens, temperature=1.0, top_p=1.0, seed=seed + j)
              for j in range(len(prompt_ids))]
    generations = generate(model, tokenizer, prompt_ids, params)
    eos = tokenizer.eos_token_id
    # the EOS that ended a response is an action of the policy: it is trained like any other token
    responses = [g.token_ids + ([eos] if g.finish_reason == "stop" else []) for g in generations]
    return Rollouts(pack(prompt_ids, responses, pad_id=eos), [g.text for g in generations],
                    [g.finish_reason == "stop" for g in generations])


def token_logprobs(model: M1ForCausalLM, seq: Sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """log π(response token | prefix) [B, R] (differentiable when grad is enabled) and the policy's
    entropy at those positions [B, R] (detached). Padding positions hold junk: use `response_mask`."""
    logits = model(seq.input_ids, attention_mask=seq.attention_mask)
    P, R = seq.prompt_width, seq.responses.shape[1]
    logp_all = torch.log_softmax(logits[:, P - 1:P - 1 + R], dim=-1)
    logp = logp_all.gather(-1, seq.responses[..., None]).squeeze(-1)
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy



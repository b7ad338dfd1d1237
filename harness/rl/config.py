"""CISPO vs GRPO vs DAPO on the tiny reference model, on CPU, from one start.

    m1bench rl --steps 150 --seeds 0,1 --out reports/rl/

1. Start: the tiny checkpoint after a deliberately short SFT on the task's correct answers
   (`--warmup-steps`), so the start policy answers in the right shape and is right on part of the
   problems; RL has to do the rest.
2. For each objective, from that same start (same weights, optimiser, seed): `--steps` RL steps. Every
   step draws the same prompts for every objective (seeded by step), samples `--group-size` responses
   per prompt with the same per-sample seeds (the sampling budget is identical), grades them with the
   AIME suite's math-verify grader, and takes `--minibatches` optimiser steps over disjoint slices of
   the groups (the first on-policy, the later ones off-policy, where the clipping acts). DAPO drops the
   all-correct/all-wrong groups (its dynamic sampling) within that same budget instead of resampling.
   Each of `--seeds` gets its own start and its own prompt/sampling streams, shared by all objectives.
3. Outputs under --out: results.json (config, environment, per-step curves, summary), curves.png, and
   runs/<objective>-seed<k>.json (one per finished run; a rerun with the same config reuses them).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Config:
    objectives: tuple[str, ...] = ("cispo", "grpo", "dapo")
    steps: int = 150
    prompts_per_step: int = 16
    group_size: int = 8
    minibatches: int = 4
    lr: float = 3e-4
    max_grad_norm: float = 1.0
    max_operand: int = 4
    max_new_tokens: int = 3
    warmup_steps: int = 40
    warmup_batch: int = 64
    warmup_lr: float = 1e-3
    eval_every: int = 10
    seeds: tuple[int, ...] = (0, 1)
    threads: int = 1
    checkpoint: str | None = None
    cispo_eps_is_high: float = 0.28
    dapo_eps_low: float = 0.2
    dapo_eps_high: float = 0.28
    grpo_eps: float = 0.2
    grpo_beta: float = 0.04

    def key(self, objective: str, seed: int) -> str:
        """What a finished run of (`objective`, `seed`) depends on: the config but the lists of runs."""
        d = {k: v for k, v in asdict(self).items() if k not in ("objectives", "seeds")}
        return hashlib.sha256(json.dumps([objective, seed, d], sort_keys=True).encode()).hexdigest()[:16]

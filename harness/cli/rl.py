"""`m1bench rl`: CISPO vs GRPO vs DAPO on the tiny reference model, on CPU (harness/rl/experiment.py,
imported when the command runs: it pulls in torch, which `--help` does not need)."""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from m1bench.harness.rl import config
from m1bench.harness.rl.config import Config


def add_arguments(p: argparse.ArgumentParser):
    defaults = Config()
    p.add_argument("--out", type=Path, default=Path("reports/rl"), help="output directory (default: reports/rl)")
    p.add_argument("--fresh", action="store_true", help="rerun objectives even if a finished run with this config exists")
    p.add_argument("--objectives", default=",".join(defaults.objectives),
                   help=f"comma-separated, from {', '.join(defaults.objectives)} (default: all)")
    helps = {
        "steps": "RL steps per objective", "prompts_per_step": "prompts (groups) per step",
        "group_size": "samples per prompt (G)", "minibatches": "optimiser steps per rollout batch (disjoint group slices)",
        "lr": "Adam learning rate of RL", "max_grad_norm": "gradient-norm clip",
        "max_operand": "problems are a+b with 0 <= a, b <= this", "max_new_tokens": "response token budget (EOS included)",
        "warmup_steps": "SFT steps that make the start policy", "warmup_batch": "SFT batch size",
        "warmup_lr": "SFT learning rate",
        "eval_every": "greedy-accuracy evaluation period (steps)",
        "threads": "torch CPU threads (the CPU may be shared)", "checkpoint": "checkpoint directory (default: the tiny one)",
        "cispo_eps_is_high": "CISPO ε^IS_high (no lower bound, as the paper)", "dapo_eps_low": "DAPO ε_low",
        "dapo_eps_high": "DAPO ε_high", "grpo_eps": "GRPO clip ε", "grpo_beta": "GRPO KL coefficient β",
    }
    p.add_argument("--seeds", type=_seed_list, default=defaults.seeds,
                   help="comma-separated seeds; each gets its own start, shared by all objectives (default: %(default)s)")
    for f in fields(Config):
        if f.name in ("objectives", "seeds"):
            continue
        kind = str if f.name == "checkpoint" else type(f.default)
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default,
                       help=helps[f.name])  # the formatter adds the default


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def config_from_args(args) -> Config:
    values = {f.name: getattr(args, f.name) for f in fields(Config) if f.name not in ("objectives", "seeds")}
    return Config(objectives=tuple(o.strip() for o in args.objectives.split(",") if o.strip()),
                  seeds=args.seeds, **values)


def cmd_rl(args):
    from m1bench.harness.rl import experiment

    experiment.run(config_from_args(args), args.out, fresh=args.fresh)


def add_parser(sub):
    p = sub.add_parser("rl", help="compare CISPO, GRPO and DAPO on a verifiable task with the tiny model (CPU)",
                       description=config.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=cmd_rl)

"""CISPO vs GRPO vs DAPO on the tiny reference model, on CPU, from one start.

    python -m m1bench.harness.rl.experiment --steps 120 --out reports/rl/

1. Start: the tiny checkpoint after a short format-only SFT (answers drawn at random, independent of
   the prompt), so the start policy answers in the right shape but at about chance accuracy.
2. For each objective, from that same start (same weights, optimiser, seed): `--steps` RL steps. Every
   step draws the same prompts for every objective (seeded by step), samples `--group-size` responses
   per prompt with the same per-sample seeds (the sampling budget is identical), grades them with the
   AIME suite's math-verify grader, and takes `--minibatches` optimiser steps over disjoint slices of
   the groups (the first on-policy, the later ones off-policy, where the clipping acts). DAPO drops the
   all-correct/all-wrong groups (its dynamic sampling) within that same budget instead of resampling.
3. Outputs under --out: results.json (config, environment, per-step curves, summary), curves.png, and
   runs/<objective>.json (one per finished objective; a rerun with the same config reuses them).
"""
import argparse
import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from m1bench.harness.profiling.provenance import environment, provenance_line
from m1bench.harness.rl.objectives import (PolicyLoss, cispo_loss, dapo_loss, group_advantages, grpo_loss,
                                           informative_groups)
from m1bench.harness.rl.plot import plot_runs
from m1bench.harness.rl.rollout import Sequences, pack, sample_groups, token_logprobs
from m1bench.harness.rl.task import Problem, addition_problems, reward
from m1bench.model.checkpoint import load_model
from m1bench.model.generate import SamplingParams, generate
from m1bench.model.tiny import ensure_tiny
from m1bench.model.tokenizer import ChatTokenizer, load_tokenizer

SCHEMA_VERSION = 1
console = Console()


@dataclass(frozen=True)
class Config:
    objectives: tuple[str, ...] = ("cispo", "grpo", "dapo")
    steps: int = 120
    prompts_per_step: int = 16
    group_size: int = 8
    minibatches: int = 4
    lr: float = 1e-3
    max_grad_norm: float = 1.0
    max_operand: int = 4
    max_new_tokens: int = 3
    warmup_steps: int = 60
    warmup_batch: int = 64
    eval_every: int = 10
    seed: int = 0
    threads: int = 1
    checkpoint: str | None = None
    cispo_eps_is_high: float = 0.28
    dapo_eps_low: float = 0.2
    dapo_eps_high: float = 0.28
    grpo_eps: float = 0.2
    grpo_beta: float = 0.04

    def key(self, objective: str) -> str:
        """What a finished run of `objective` depends on (everything but the list of objectives)."""
        d = {k: v for k, v in asdict(self).items() if k != "objectives"}
        return hashlib.sha256(json.dumps([objective, d], sort_keys=True).encode()).hexdigest()[:16]


# ---- objectives: name -> how to call the loss -------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    loss: Callable[..., PolicyLoss]  # (logp, old_logp, advantages, mask, group_size, ref_logp) -> PolicyLoss
    dynamic_sampling: bool = False  # drop all-correct / all-wrong groups before the update (DAPO)
    needs_reference: bool = False  # log-probs of the frozen start policy (GRPO's KL term)


def objectives(cfg: Config) -> dict[str, Objective]:
    return {
        "cispo": Objective(lambda lp, old, adv, m, g, ref: cispo_loss(lp, old, adv, m, g, eps_is_high=cfg.cispo_eps_is_high)),
        "grpo": Objective(lambda lp, old, adv, m, g, ref: grpo_loss(lp, old, adv, m, g, ref_logp=ref, eps=cfg.grpo_eps,
                                                                    beta=cfg.grpo_beta),
                          needs_reference=cfg.grpo_beta > 0),
        "dapo": Objective(lambda lp, old, adv, m, g, ref: dapo_loss(lp, old, adv, m, g, eps_low=cfg.dapo_eps_low,
                                                                    eps_high=cfg.dapo_eps_high),
                          dynamic_sampling=True),
    }


# ---- the start policy -------------------------------------------------------------------------------
def warm_start(model, tok: ChatTokenizer, problems: list[Problem], cfg: Config) -> list[float]:
    """Format-only SFT: each prompt is paired with an answer drawn uniformly from the task's answer set,
    independent of the prompt, then EOS. Returns the loss per step."""
    g = torch.Generator().manual_seed(cfg.seed)
    answers = sorted({p.answer for p in problems}, key=int)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []
    for _ in range(cfg.warmup_steps):
        which = torch.randint(len(problems), (cfg.warmup_batch,), generator=g).tolist()
        fake = torch.randint(len(answers), (cfg.warmup_batch,), generator=g).tolist()
        seq = pack([tok.encode(problems[i].prompt) for i in which],
                   [tok.encode(answers[j]) + [tok.eos_token_id] for j in fake], pad_id=tok.eos_token_id)
        logp, _ = token_logprobs(model, seq)
        loss = -(logp * seq.response_mask).sum() / seq.response_mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def greedy_accuracy(model, tok: ChatTokenizer, problems: list[Problem], max_new_tokens: int) -> float:
    gens = generate(model, tok, [tok.encode(p.prompt) for p in problems],
                    SamplingParams(max_new_tokens=max_new_tokens, temperature=0))
    return sum(reward(g.text, g.finish_reason == "stop", p.answer) for g, p in zip(gens, problems)) / len(problems)


# ---- one RL run -------------------------------------------------------------------------------------
def step_prompts(problems: list[Problem], cfg: Config, step: int) -> list[Problem]:
    """The prompts of RL step `step`: the same for every objective."""
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
    return [problems[i] for i in torch.randperm(len(problems), generator=g)[:cfg.prompts_per_step].tolist()]


def rows_of(groups: torch.Tensor, group_size: int) -> torch.Tensor:
    return (groups[:, None] * group_size + torch.arange(group_size)).reshape(-1)


def select(seq: Sequences, rows: torch.Tensor) -> Sequences:
    return Sequences(seq.input_ids[rows], seq.attention_mask[rows], seq.response_mask[rows], seq.prompt_width)


def rl_step(model, ref_model, opt, objective: Objective, tok: ChatTokenizer, batch: list[Problem],
            cfg: Config, step: int) -> dict:
    G = cfg.group_size
    start = time.perf_counter()
    roll = sample_groups(model, tok, [p.prompt for p in batch], G, cfg.max_new_tokens,
                         seed=(cfg.seed * 1_000_003 + step) * 100_000)
    rewards = torch.tensor([reward(text, done, p.answer)
                            for text, done, p in zip(roll.texts, roll.finished, (p for p in batch for _ in range(G)))])
    seq = roll.sequences
    with torch.no_grad():
        old_logp, entropy = token_logprobs(model, seq)
        ref_logp = token_logprobs(ref_model, seq)[0] if objective.needs_reference else None
    advantages = group_advantages(rewards, G)
    informative = informative_groups(rewards > 0, G)
    groups = torch.arange(len(batch))
    if objective.dynamic_sampling:
        groups = groups[informative]
    losses, clipped = [], []
    for chunk in groups.tensor_split(min(cfg.minibatches, len(groups))) if len(groups) else []:
        rows = rows_of(chunk, G)
        sub = select(seq, rows)
        logp, _ = token_logprobs(model, sub)
        out = objective.loss(logp, old_logp[rows], advantages[rows], sub.response_mask, G,
                             None if ref_logp is None else ref_logp[rows])
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        losses.append(out.loss.item())
        clipped.append(out.clipped.item())
    mask = seq.response_mask
    return {
        "step": step,
        "reward": rewards.mean().item(),
        "finished": sum(roll.finished) / len(roll.finished),
        "informative_groups": informative.float().mean().item(),
        "updated_groups": len(groups),
        "optimizer_steps": len(losses),
        "loss": sum(losses) / len(losses) if losses else None,
        "clipped": sum(clipped) / len(clipped) if clipped else None,
        "entropy": (entropy * mask).sum().item() / mask.sum().item(),
        "response_tokens": mask.sum(1).float().mean().item(),
        "wall_s": time.perf_counter() - start,
    }


def run_objective(name: str, start_state: dict, start_model, tok, problems, cfg: Config, progress, task_id) -> dict:
    torch.manual_seed(cfg.seed)
    objective = objectives(cfg)[name]
    model = copy.deepcopy(start_model).requires_grad_(True)
    model.load_state_dict(start_state)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps, evals = [], [{"step": 0, "greedy_accuracy": greedy_accuracy(model, tok, problems, cfg.max_new_tokens)}]
    begin = time.perf_counter()
    for step in range(cfg.steps):
        rec = rl_step(model, start_model, opt, objective, tok, step_prompts(problems, cfg, step), cfg, step)
        steps.append(rec)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            evals.append({"step": step + 1, "greedy_accuracy": greedy_accuracy(model, tok, problems, cfg.max_new_tokens)})
        progress.update(task_id, advance=1, description=f"{name:6s} reward {rec['reward']:.2f} "
                                                         f"greedy {evals[-1]['greedy_accuracy']:.2f}")
    return {"objective": name, "key": cfg.key(name), "steps": steps, "evals": evals,
            "wall_s": time.perf_counter() - begin}


# ---- summary ----------------------------------------------------------------------------------------
def summarise(run: dict, cfg: Config) -> dict:
    steps = run["steps"]
    tail = max(1, len(steps) // 5)
    mean = lambda xs: sum(xs) / len(xs) if xs else None
    return {
        "reward_first_10": mean([s["reward"] for s in steps[:10]]),
        f"reward_last_{tail}": mean([s["reward"] for s in steps[-tail:]]),
        "reward_mean_all_steps": mean([s["reward"] for s in steps]),
        "greedy_accuracy_start": run["evals"][0]["greedy_accuracy"],
        "greedy_accuracy_final": run["evals"][-1]["greedy_accuracy"],
        "greedy_accuracy_best": max(e["greedy_accuracy"] for e in run["evals"]),
        "entropy_last_10": mean([s["entropy"] for s in steps[-10:]]),
        "clipped_token_share_mean": mean([s["clipped"] for s in steps if s["clipped"] is not None]),
        "updated_groups_mean": mean([s["updated_groups"] for s in steps]),
        "optimizer_steps": sum(s["optimizer_steps"] for s in steps),
        "samples": len(steps) * cfg.prompts_per_step * cfg.group_size,
        "wall_s": run["wall_s"],
    }


def summary_table(summary: dict[str, dict]) -> Table:
    table = Table(title="RL objectives on the addition task (tiny model, CPU)")
    cols = next(iter(summary.values())).keys()
    table.add_column("objective")
    for c in cols:
        table.add_column(c.replace("_", " "), justify="right")
    for name, s in summary.items():
        table.add_row(name, *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in s.values()))
    return table


# ---- driver -----------------------------------------------------------------------------------------
def run(cfg: Config, out: Path, fresh: bool = False) -> dict:
    known = objectives(cfg)
    unknown = [o for o in cfg.objectives if o not in known]
    if unknown:
        raise SystemExit(f"unknown objective(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    torch.set_num_threads(cfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    began = time.perf_counter()

    path = ensure_tiny(cfg.checkpoint)
    tok = load_tokenizer(path)
    problems = addition_problems(cfg.max_operand)
    torch.manual_seed(cfg.seed)
    start_model = load_model(path)
    with console.status("warm start (format-only SFT)"):
        warmup_losses = warm_start(start_model, tok, problems, cfg)
    start_model.requires_grad_(False)
    start_state = copy.deepcopy(start_model.state_dict())

    runs = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        for name in cfg.objectives:
            saved = out / "runs" / f"{name}.json"
            if not fresh and saved.exists() and json.loads(saved.read_text()).get("key") == cfg.key(name):
                runs[name] = json.loads(saved.read_text())
                console.print(f"{name}: reusing the finished run in {saved}")
                continue
            task_id = progress.add_task(name, total=cfg.steps)
            runs[name] = run_objective(name, start_state, start_model, tok, problems, cfg, progress, task_id)
            saved.write_text(json.dumps(runs[name], indent=1) + "\n")

    env = {**environment("cpu"), "math_verify": version("math-verify"), "threads": cfg.threads,
           "checkpoint": str(path)}
    summary = {name: summarise(r, cfg) for name, r in runs.items()}
    results = {"schema_version": SCHEMA_VERSION, "config": asdict(cfg), "environment": env,
               "task": {"name": "addition", "problems": len(problems), "grader": f"math-verify=={env['math_verify']}",
                        "reward": "1 if the response ends with EOS within max_new_tokens and math-verify accepts it"},
               "warm_start_loss": {"first": warmup_losses[0] if warmup_losses else None,
                                   "last": warmup_losses[-1] if warmup_losses else None},
               "summary": summary, "runs": runs, "total_wall_s": time.perf_counter() - began}
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    title = (f"{len(problems)} addition problems, {cfg.prompts_per_step} prompts × {cfg.group_size} samples per step, "
             f"{cfg.minibatches} minibatches, lr {cfg.lr} — {provenance_line(env)}")
    plot_runs(runs, out / "curves.png", title)
    console.print(summary_table(summary))
    console.print(f"wrote {out / 'results.json'} and {out / 'curves.png'}")
    return results


def add_arguments(p: argparse.ArgumentParser):
    defaults = Config()
    p.add_argument("--out", type=Path, default=Path("reports/rl"), help="output directory (default: reports/rl)")
    p.add_argument("--fresh", action="store_true", help="rerun objectives even if a finished run with this config exists")
    p.add_argument("--objectives", default=",".join(defaults.objectives),
                   help=f"comma-separated, from {', '.join(objectives(defaults))} (default: all)")
    helps = {
        "steps": "RL steps per objective", "prompts_per_step": "prompts (groups) per step",
        "group_size": "samples per prompt (G)", "minibatches": "optimiser steps per rollout batch (disjoint group slices)",
        "lr": "Adam learning rate (warm start and RL)", "max_grad_norm": "gradient-norm clip",
        "max_operand": "problems are a+b with 0 <= a, b <= this", "max_new_tokens": "response token budget (EOS included)",
        "warmup_steps": "format-only SFT steps before RL", "warmup_batch": "SFT batch size",
        "eval_every": "greedy-accuracy evaluation period (steps)", "seed": "seed for everything",
        "threads": "torch CPU threads (the CPU may be shared)", "checkpoint": "checkpoint directory (default: the tiny one)",
        "cispo_eps_is_high": "CISPO ε^IS_high (no lower bound, as the paper)", "dapo_eps_low": "DAPO ε_low",
        "dapo_eps_high": "DAPO ε_high", "grpo_eps": "GRPO clip ε", "grpo_beta": "GRPO KL coefficient β",
    }
    for f in fields(Config):
        if f.name == "objectives":
            continue
        kind = str if f.name == "checkpoint" else type(f.default)
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=f.default,
                       help=f"{helps[f.name]} (default: {f.default})")


def config_from_args(args) -> Config:
    values = {f.name: getattr(args, f.name) for f in fields(Config) if f.name != "objectives"}
    return Config(objectives=tuple(o.strip() for o in args.objectives.split(",") if o.strip()), **values)


def cmd_rl(args):
    run(config_from_args(args), args.out, fresh=args.fresh)


def add_parser(sub):
    p = sub.add_parser("rl", help="compare CISPO, GRPO and DAPO on a verifiable task with the tiny model (CPU)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=cmd_rl)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m m1bench.harness.rl.experiment", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    cmd_rl(p.parse_args(argv))


if __name__ == "__main__":
    main()

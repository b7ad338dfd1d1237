"""Runs the CISPO / GRPO / DAPO comparison that `config` describes (its docstring is the protocol,
kept there, torch-free, so `m1bench rl --help` does not import torch)."""
import copy
import json
import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from m1bench.harness.core.provenance import environment, provenance_line
from m1bench.harness.rl.config import Config
from m1bench.harness.rl.objectives import (
    PolicyLoss,
    cispo_loss,
    dapo_loss,
    group_advantages,
    grpo_loss,
    informative_groups,
)
from m1bench.harness.rl.rollout import Sequences, pack, sample_groups, token_logprobs
from m1bench.harness.rl.task import Problem, addition_problems, reward
from m1bench.model.checkpoint import load_model
from m1bench.model.generate import SamplingParams, generate
from m1bench.model.tiny import ensure_tiny
from m1bench.model.tokenizer import ChatTokenizer, load_tokenizer

SCHEMA_VERSION = 1
console = Console()


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
def warm_start(model, tok: ChatTokenizer, problems: list[Problem], cfg: Config, seed: int) -> list[float]:
    """Short SFT on (prompt, correct answer + EOS) pairs drawn at random. Returns the loss per step."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.warmup_lr)
    losses = []
    for _ in range(cfg.warmup_steps):
        which = torch.randint(len(problems), (cfg.warmup_batch,), generator=g).tolist()
        seq = pack([tok.encode(problems[i].prompt) for i in which],
                   [tok.encode(problems[i].answer) + [tok.eos_token_id] for i in which], pad_id=tok.eos_token_id)
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
def step_prompts(problems: list[Problem], cfg: Config, seed: int, step: int) -> list[Problem]:
    """The prompts of RL step `step`: the same for every objective."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return [problems[i] for i in torch.randperm(len(problems), generator=g)[:cfg.prompts_per_step].tolist()]


def rows_of(groups: torch.Tensor, group_size: int) -> torch.Tensor:
    return (groups[:, None] * group_size + torch.arange(group_size)).reshape(-1)


def select(seq: Sequences, rows: torch.Tensor) -> Sequences:
    return Sequences(seq.input_ids[rows], seq.attention_mask[rows], seq.response_mask[rows], seq.prompt_width)


def rl_step(model, ref_model, opt, objective: Objective, tok: ChatTokenizer, batch: list[Problem],
            cfg: Config, seed: int, step: int) -> dict:
    G = cfg.group_size
    start = time.perf_counter()
    roll = sample_groups(model, tok, [p.prompt for p in batch], G, cfg.max_new_tokens,
                         seed=(seed * 1_000_003 + step) * 100_000)
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


def run_objective(name: str, seed: int, start_model, tok, problems, cfg: Config, progress, task_id) -> dict:
    """`cfg.steps` RL steps of objective `name` from `start_model` (left untouched; also GRPO's π_ref)."""
    torch.manual_seed(seed)
    objective = objectives(cfg)[name]
    model = copy.deepcopy(start_model).requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps, evals = [], [{"step": 0, "greedy_accuracy": greedy_accuracy(model, tok, problems, cfg.max_new_tokens)}]
    begin = time.perf_counter()
    for step in range(cfg.steps):
        rec = rl_step(model, start_model, opt, objective, tok, step_prompts(problems, cfg, seed, step), cfg, seed, step)
        steps.append(rec)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            evals.append({"step": step + 1, "greedy_accuracy": greedy_accuracy(model, tok, problems, cfg.max_new_tokens)})
        progress.update(task_id, advance=1, description=f"{name:5s} seed {seed}: reward {rec['reward']:.2f} "
                                                         f"greedy {evals[-1]['greedy_accuracy']:.2f}")
    return {"objective": name, "seed": seed, "key": cfg.key(name, seed), "steps": steps, "evals": evals,
            "wall_s": time.perf_counter() - begin}


# ---- summary ----------------------------------------------------------------------------------------
def summarise(run: dict) -> dict:
    """One run's numbers. reward_* are means of the per-step training reward (sampled at temperature 1):
    first 10 steps, last fifth of the steps, all steps (the area under the curve per step)."""
    steps = run["steps"]
    mean = lambda xs: sum(xs) / len(xs) if xs else None
    return {
        "reward_start": mean([s["reward"] for s in steps[:10]]),
        "reward_end": mean([s["reward"] for s in steps[-max(1, len(steps) // 5):]]),
        "reward_mean": mean([s["reward"] for s in steps]),
        "greedy_start": run["evals"][0]["greedy_accuracy"],
        "greedy_end": run["evals"][-1]["greedy_accuracy"],
        "greedy_best": max(e["greedy_accuracy"] for e in run["evals"]),
        "entropy_end": mean([s["entropy"] for s in steps[-10:]]),
        "clipped_share": mean([s["clipped"] for s in steps if s["clipped"] is not None]),
        "groups_per_update": mean([s["updated_groups"] for s in steps]),
        "optimizer_steps": sum(s["optimizer_steps"] for s in steps),
        "wall_s": run["wall_s"],
    }


def summarise_seeds(runs: list[dict]) -> dict:
    per_seed = {r["seed"]: summarise(r) for r in runs}
    keys = next(iter(per_seed.values())).keys()
    mean = {k: sum(s[k] for s in per_seed.values() if s[k] is not None) / len(per_seed) for k in keys}
    return {"mean_over_seeds": mean, "per_seed": per_seed}


def summary_table(summary: dict[str, dict]) -> Table:
    """Metrics as rows, objectives as columns (fits a terminal); per-seed values in brackets."""
    table = Table(title="RL on the addition task, tiny model, CPU: mean over seeds (per seed)")
    table.add_column("metric")
    for name in summary:
        table.add_column(name, justify="right")
    fmt = lambda v: f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"
    for k in next(iter(summary.values()))["mean_over_seeds"]:
        cells = []
        for s in summary.values():
            seeds = [p[k] for p in s["per_seed"].values() if p[k] is not None]
            cell = fmt(s["mean_over_seeds"][k])
            cells.append(cell + (f" ({'/'.join(map(fmt, seeds))})" if len(seeds) > 1 else ""))
        table.add_row(k.replace("_", " "), *cells)
    return table


# ---- driver -----------------------------------------------------------------------------------------
def run(cfg: Config, out: Path, fresh: bool = False) -> dict:
    known = objectives(cfg)
    unknown = [o for o in cfg.objectives if o not in known]
    if unknown:
        raise SystemExit(f"unknown objective(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if not cfg.seeds:
        raise SystemExit("--seeds: give at least one seed")
    torch.set_num_threads(cfg.threads)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    path = ensure_tiny(cfg.checkpoint)
    tok = load_tokenizer(path)
    problems = addition_problems(cfg.max_operand)

    runs: dict[str, list[dict]] = {name: [] for name in cfg.objectives}
    warmup = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        for seed in cfg.seeds:
            start_model = load_model(path)
            losses = warm_start(start_model, tok, problems, cfg, seed)  # seconds; redone rather than stored
            warmup[seed] = {"first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}
            start_model.requires_grad_(False)
            for name in cfg.objectives:
                saved = out / "runs" / f"{name}-seed{seed}.json"
                if not fresh and saved.exists() and json.loads(saved.read_text()).get("key") == cfg.key(name, seed):
                    runs[name].append(json.loads(saved.read_text()))
                    progress.console.print(f"{name} seed {seed}: reusing the finished run in {saved}")
                    continue
                task_id = progress.add_task(f"{name} seed {seed}", total=cfg.steps)
                runs[name].append(run_objective(name, seed, start_model, tok, problems, cfg, progress, task_id))
                saved.write_text(json.dumps(runs[name][-1], indent=1) + "\n")

    env = {**environment("cpu"), "math_verify": version("math-verify"), "threads": cfg.threads,
           "checkpoint": str(path)}
    summary = {name: summarise_seeds(r) for name, r in runs.items()}
    results = {"schema_version": SCHEMA_VERSION, "config": asdict(cfg), "environment": env,
               "task": {"name": "addition", "problems": len(problems), "grader": f"math-verify=={env['math_verify']}",
                        "reward": "1 if the response ends with EOS within max_new_tokens and math-verify accepts it"},
               "warm_start": warmup, "summary": summary, "runs": runs, "total_wall_s": time.perf_counter() - began}
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    title = (f"{len(problems)} addition problems · {cfg.prompts_per_step} prompts × {cfg.group_size} samples per step · "
             f"{cfg.minibatches} minibatches · lr {cfg.lr} · seeds {', '.join(map(str, cfg.seeds))}\n{provenance_line(env)}")
    from m1bench.harness.rl.plot import plot_runs  # matplotlib: only when there is something to plot
    plot_runs(runs, out / "curves.png", title)
    console.print(summary_table(summary))
    console.print(f"wrote {out / 'results.json'} and {out / 'curves.png'} ({results['total_wall_s']:.0f} s)")
    return results

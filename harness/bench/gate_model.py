"""The CI regression gate's model and data: the `tiny` preset trained on CPU to repeat a two-digit
number in M1's math answer format (`\\boxed{n}`), so that the gate has a score to lose. The seeded
random `tiny` checkpoint scores 0 everywhere, and a checkpoint that scores 0 cannot regress.

    python -m m1bench.harness.bench.gate_model problems reports/baselines/tiny/gate_problems.jsonl
    python -m m1bench.harness.bench.gate_model train reports/baselines/tiny/tiny-gate
    python -m m1bench.harness.bench.gate_model perturb reports/baselines/tiny/tiny-gate /tmp/degraded --scale 0.5

The evaluation itself is an ordinary run of the AIME suite (its prompt, math-verify grading) on
these problems: reports/baselines/tiny/gate.toml.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

from rich.console import Console

from m1bench.suites.aime.suite import MATH_SYSTEM_PROMPT

console = Console(stderr=True)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def all_problems() -> list[dict[str, str]]:
    # Copying is what a 4-layer model learns in minutes on 2 CPU cores (addition facts take hours).
    return [{"id": f"repeat-{n:02d}", "problem": f"Repeat this number: {n:02d}", "answer": f"{n:02d}"} for n in range(100)]


def gate_problems(n: int = 50, seed: int = 0) -> list[dict[str, str]]:
    """The problems the gate evaluates: a fixed seeded subset of the training problems."""
    probs = all_problems()
    random.Random(seed).shuffle(probs)
    return sorted(probs[:n], key=lambda p: p["id"])


def _prompt(tokenizer, problem: dict[str, str]) -> list[int]:
    """The prompt exactly as the AIME suite and the reference engine send it."""
    return tokenizer.encode(tokenizer.render_chat([{"role": "system", "content": MATH_SYSTEM_PROMPT},
                                                   {"role": "user", "content": problem["problem"]}],
                                                  add_generation_prompt=True))


def _answer(tokenizer, problem: dict[str, str]) -> list[int]:
    return tokenizer.encode(f"\\boxed{{{problem['answer']}}}") + [tokenizer.eos_token_id]


def sampled_accuracy(model, tokenizer, problems: list[dict[str, str]], seed: int = 0) -> float:
    """Share of the problems answered exactly, sampling as the gate does (T=1.0, top_p=0.95)."""
    import torch

    from m1bench.model.generate import SamplingParams, generate

    with torch.no_grad():
        gens = generate(model, tokenizer, [_prompt(tokenizer, p) for p in problems],
                        [SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.95, seed=seed + i)
                         for i in range(len(problems))])
    return sum(g.text.strip() == f"\\boxed{{{p['answer']}}}" for g, p in zip(gens, problems)) / len(problems)


def train(out_dir: str | Path, *, steps: int = 1500, batch_size: int = 16, lr: float = 2e-3, seed: int = 0,
          target_loss: float = 0.003, device: str = "cpu") -> Path:
    """Teacher-forced training of the answer tokens on the suite's full chat prompts, from seeded
    weights of std 1/sqrt(hidden); stops once the running loss is below target_loss (a few hundred
    steps, a few minutes on 2 CPU cores). The tiny checkpoint's own init (std 0.02, as transformers
    initialises MiniMax) leaves attention uniform and the loss stuck at chance for thousands of steps."""
    import torch
    import torch.nn.functional as F

    from m1bench.kernels import lightning
    from m1bench.model.checkpoint import load_model, save_checkpoint
    from m1bench.model.tiny import create_checkpoint, init_random
    from m1bench.model.tokenizer import load_tokenizer

    out = Path(out_dir)
    create_checkpoint(out)  # the tiny preset + the byte tokenizer
    model, tok = load_model(out, device=device), load_tokenizer(out)
    init_random(model, seed, std=model.config.hidden_size ** -0.5)
    lightning.PREFILL_IMPLS.pop("triton", None)  # the Triton kernels have no backward: train on the PyTorch path
    problems = all_problems()
    prompts = {p["id"]: _prompt(tok, p) for p in problems}
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    running, t0 = None, time.perf_counter()
    for step in range(steps):
        pairs = [(prompts[p["id"]], _answer(tok, p)) for p in (rng.choice(problems) for _ in range(batch_size))]
        width = max(len(p) + len(a) for p, a in pairs)
        ids = torch.zeros(batch_size, width, dtype=torch.long)
        mask = torch.zeros(batch_size, width, dtype=torch.long)
        labels = torch.full((batch_size, width), -100)
        for i, (p, a) in enumerate(pairs):  # left padding, as the engine batches prompts
            pad = width - len(p) - len(a)
            ids[i, pad:], mask[i, pad:] = torch.tensor(p + a), 1
            labels[i, pad + len(p) - 1: width - 1] = torch.tensor(a)  # position t predicts token t+1
        # The model's cache writes the lightning state in place after using it; saving copies of the
        # tensors autograd keeps makes that harmless for training.
        with torch.autograd.graph.saved_tensors_hooks(lambda t: t.clone(), lambda t: t):
            logits = model(ids.to(device), attention_mask=mask.to(device))
            loss = F.cross_entropy(logits.flatten(0, 1), labels.to(device).flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        running = loss.item() if running is None else 0.8 * running + 0.2 * loss.item()
        if step % 25 == 0:
            console.print(f"step {step:4d}  loss {loss.item():.4f}  running {running:.4f}  {time.perf_counter() - t0:.0f}s")
        if running < target_loss:
            break
    model.eval()
    accuracy = sampled_accuracy(model, tok, gate_problems())
    save_checkpoint(model.cpu(), out)
    (out / "TRAINING.json").write_text(json.dumps({
        "what": "tiny preset trained to repeat two-digit numbers as \\boxed{nn}, for the CI regression gate",
        "code": "m1bench.harness.bench.gate_model.train", "steps": step + 1, "batch_size": batch_size, "lr": lr,
        "init_std": round(model.config.hidden_size ** -0.5, 6), "seed": seed, "device": str(device),
        "torch": torch.__version__, "final_running_loss": round(running, 6), "seconds": round(time.perf_counter() - t0, 1),
        "gate_problems_sampled_accuracy": accuracy}, indent=2) + "\n")
    console.print(f"trained {step + 1} steps (running loss {running:.4f}, sampled accuracy on the gate problems "
                  f"{accuracy:.2f}) -> {out}")
    return out


def perturb(src: str | Path, dst: str | Path, *, scale: float = 0.5, seed: int = 0) -> Path:
    """A deliberately degraded copy: every weight matrix gets N(0, (scale · its own std)²) noise."""
    import torch

    from m1bench.model.checkpoint import load_model, save_checkpoint

    src, dst = Path(src), Path(dst)
    model = load_model(src)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.add_(torch.randn(p.shape, generator=g) * (scale * p.float().std()))
    dst.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, dst)
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copyfile(src / name, dst / name)
    return dst


def write_problems(path: str | Path, n: int = 50) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(p) + "\n" for p in gate_problems(n)))
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m m1bench.harness.bench.gate_model", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the gate checkpoint into OUT")
    t.add_argument("out")
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--batch-size", type=int, default=16)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    p = sub.add_parser("perturb", help="write a degraded copy of a checkpoint (Gaussian noise on the weights)")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--scale", type=float, default=0.5, help="noise std relative to each weight matrix's std")
    p.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("problems", help="write the gate's problems (JSONL: id, problem, answer)")
    q.add_argument("out")
    q.add_argument("-n", type=int, default=50)
    args = ap.parse_args(argv)
    if args.cmd == "train":
        train(args.out, steps=args.steps, batch_size=args.batch_size, seed=args.seed, device=args.device)
    elif args.cmd == "perturb":
        console.print(f"degraded checkpoint: {perturb(args.src, args.dst, scale=args.scale, seed=args.seed)}")
    else:
        console.print(f"gate problems: {write_problems(args.out, args.n)}")


if __name__ == "__main__":
    main()

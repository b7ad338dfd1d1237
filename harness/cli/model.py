"""`m1bench model init|info` and `m1bench generate`: make, describe and sample the reference model.
torch is imported when a command runs, not for its --help."""
import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from m1bench.model.config import M1Config
from m1bench.model.presets import PRESETS, preset

console = Console()
DTYPES = ("float32", "bfloat16", "float16", "float64")  # torch dtype names


def model_facts(config: M1Config) -> dict:
    import torch

    from m1bench.model.m1 import M1ForCausalLM
    with torch.device("meta"):
        counts = M1ForCausalLM(config).num_parameters()
    mix = "".join("L" if t == 0 else "S" for t in config.attn_type_list)
    return {
        "parameters": counts["total"], "active parameters per token (no embedding/LM head)": counts["active_per_token"],
        "layers": config.num_hidden_layers,
        "layer mix (L=lightning, S=softmax)": f"{len(config.lightning_layers)} L + {len(config.softmax_layers)} S: {mix}",
        "softmax layers (0-based)": ", ".join(map(str, config.softmax_layers)) or "-",
        "hidden / vocab": f"{config.hidden_size} / {config.vocab_size}",
        "attention heads": f"{config.num_attention_heads} q, {config.num_key_value_heads} kv (softmax), "
                           f"head_dim {config.head_dim}, RoPE on {config.rotary_dim} dims, theta {config.rope_theta:g}",
        "experts": f"{config.num_local_experts}, top-{config.num_experts_per_tok}, intermediate {config.intermediate_size}",
        "residual alpha / beta": f"{config.layernorm_mlp_alpha:.6g} / {config.layernorm_mlp_beta:g} (postnorm={config.postnorm})",
        "max positions": config.max_position_embeddings,
    }


def print_facts(title: str, facts: dict):
    table = Table(title=title, show_header=False)
    for k, v in facts.items():
        table.add_row(k, f"{v:,}" if isinstance(v, int) else str(v))
    console.print(table)


def resolve_model(path: str | None) -> Path:
    from m1bench.model.tiny import ensure_tiny
    return ensure_tiny() if path in (None, "tiny") else Path(path)


def cmd_init(args):
    from m1bench.model.tiny import create_checkpoint, default_home
    if args.preset == "m1":
        sys.exit("refusing to materialise random weights for the full m1 preset (456B parameters); "
                 "use `m1bench model info --preset m1` for its facts")
    out = Path(args.out) if args.out else default_home() / args.preset
    if (out / "config.json").exists() and not args.force:
        console.print(f"checkpoint exists: {out} (use --force to overwrite)")
        return
    create_checkpoint(out, args.preset, args.seed)
    console.print(f"wrote {args.preset} checkpoint (seed {args.seed}) to {out}")


def cmd_info(args):
    config = preset(args.preset) if args.preset else M1Config.load(resolve_model(args.model))
    print_facts(f"model: {args.preset or args.model or 'tiny'}", model_facts(config))


def cmd_generate(args):
    import torch

    from m1bench.model.checkpoint import load_model
    from m1bench.model.generate import SamplingParams, generate
    from m1bench.model.tokenizer import load_tokenizer
    path = resolve_model(args.model)
    model, tok = load_model(path, getattr(torch, args.dtype), args.device), load_tokenizer(path)
    prompt = Path(args.prompt_file).read_text() if args.prompt_file else args.prompt
    if args.raw:
        text = prompt
    else:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
                   [{"role": "user", "content": prompt}]
        text = tok.render_chat(messages)
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                            top_k=args.top_k, seed=args.seed, stop=tuple(args.stop))
    tokens = tok.encode(text)
    if args.save_state or args.resume_state:
        out = _generate_resumable(model, tok, path, tokens, params, args)
    else:
        out = generate(model, tok, [tokens], params)[0]
    console.print(out.text, markup=False, highlight=False)
    if args.json:
        Path(args.json).write_text(json.dumps({"prompt_token_ids": tokens, "token_ids": list(out.token_ids),
                                               "text": out.text, "finish_reason": out.finish_reason}) + "\n")
    console.print(f"[dim]{out.prompt_tokens} prompt + {len(out.token_ids)} generated tokens, finish={out.finish_reason}, "
                  f"prefill {out.prefill_s * 1e3:.1f} ms, decode {out.decode_s * 1e3:.1f} ms[/dim]")
    return out


def _generate_resumable(model, tok, path, tokens, params, args):
    """Chunked prefill that saves its state as it goes (--save-state) and can pick up a saved one
    (--resume-state), then sampling as usual."""
    import time

    from rich.progress import Progress

    from m1bench.model.generate import continue_generation
    from m1bench.model.identity import checkpoint_hash
    from m1bench.model.state_io import resumable_prefill
    start = time.perf_counter()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("prefill", total=len(tokens))
        cache, logits = resumable_prefill(
            model, tokens, checkpoint_hash(path), save_to=args.save_state or args.resume_state,
            load_from=args.resume_state, chunk_size=args.chunk_size,
            progress=lambda done, total: bar.update(task, completed=done))
    prefill_s = time.perf_counter() - start
    console.print(f"[dim]prefill state kept in {args.save_state or args.resume_state} "
                  f"(an interrupted run continues with --resume-state)[/dim]")
    out = continue_generation(model, tok, cache, logits, params, prompt_tokens=len(tokens))
    out.prefill_s = prefill_s
    return out


def add_sampling_args(p: argparse.ArgumentParser):
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0, the paper's)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def add_parser(sub):
    model = sub.add_parser("model", help="create or describe a model checkpoint")
    msub = model.add_subparsers(dest="model_cmd", required=True)
    init = msub.add_parser("init", help="write a seeded random checkpoint (+ byte tokenizer) for a preset")
    init.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    init.add_argument("--out", help="directory (default: $M1BENCH_HOME/<preset>, ~/.cache/m1bench/<preset>)")
    init.add_argument("--seed", type=int, default=1234)
    init.add_argument("--force", action="store_true")
    init.set_defaults(func=cmd_init)
    info = msub.add_parser("info", help="parameters, active parameters per token, layer mix")
    info.add_argument("model", nargs="?", help="checkpoint directory (default: the tiny checkpoint)")
    info.add_argument("--preset", choices=sorted(PRESETS), help="describe a preset instead of a checkpoint")
    info.set_defaults(func=cmd_info)

    gen = sub.add_parser("generate", help="generate from a chat prompt with the reference model")
    gen.add_argument("--model", help="checkpoint directory (default: the tiny checkpoint, created if missing)")
    what = gen.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="the user message")
    what.add_argument("--prompt-file", help="read the user message from a file (long inputs)")
    gen.add_argument("--system", help="system prompt")
    gen.add_argument("--raw", action="store_true", help="send the prompt as-is, without the chat template")
    gen.add_argument("--dtype", choices=DTYPES, default="float32")
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--save-state", metavar="S", help="prefill in chunks, saving the inference state to S as it goes")
    gen.add_argument("--resume-state", metavar="S", help="continue an interrupted prefill from the state in S")
    gen.add_argument("--chunk-size", type=int, default=4096, help="prefill chunk (tokens) with --save/--resume-state")
    gen.add_argument("--json", metavar="FILE", help="also write prompt and generated token ids, text and finish reason "
                     "to FILE (JSON)")
    add_sampling_args(gen)
    gen.set_defaults(func=cmd_generate)

"""`m1bench profile flops|count|latency|server`: FLOPs curves and the paper's claim, counted vs
analytic FLOPs, model/kernel latency, and server latency. Each writes JSON (+ PNG/SVG plots) and prints
a summary table."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from m1bench.harness.core.provenance import environment, provenance_line
from m1bench.model import flops as F
from m1bench.model.arch import NAMED, load_spec

console = Console(width=None if sys.stdout.isatty() else 160)  # tables stay readable in logs
BENCH = Path("reports/bench")
PAPER_CLAIM = {65536: "< 50%", 100_000: "about 25%"}  # MiniMax-M1 paper, Figure 1 (right)


def _ints(text: str) -> list[int]:
    def one(s):
        s = s.strip().upper()
        mult = {"K": 1024, "M": 1024 ** 2}.get(s[-1:], 1)
        return int(float(s[:-1] if mult > 1 else s) * mult)
    try:
        return [one(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (K/M suffixes allowed), got {text!r}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def _write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    return path


def _relative(path: Path, to: Path) -> str:
    """A file's path as written into a JSON in `to`: relative to it, so the JSON travels with its files."""
    return os.path.relpath(path, to)


def _g(x) -> str:
    x = float(x)
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


# ---- flops -----------------------------------------------------------------------------------------

CLAIM_LENGTHS = (32768, 65536, 100_000, 131072)  # the lengths the paper's claims name, and its Figure 1's end


def paper_claim(reference: str = "m1", baseline: str = "deepseek-r1", prompt: int = 0,
                max_gen: int = CLAIM_LENGTHS[-1]) -> list[dict]:
    """FLOPs ratio reference/baseline after a `prompt`-token prompt, cumulative and per token, for both
    MLA layouts: at the paper's lengths up to `max_gen`, and at `max_gen` itself. (The paper's claims
    are for no prompt; other rows leave that column empty.)"""
    a, b = load_spec(reference), load_spec(baseline)
    rows = []
    for n in sorted({n for n in CLAIM_LENGTHS if n <= max_gen} | {max_gen}):
        row = {"gen_tokens": n, "prompt": prompt, "paper_claim": PAPER_CLAIM.get(n, "") if prompt == 0 else ""}
        for layout in F.MLA_LAYOUTS:
            r = F.flops_ratio(a, b, n, prompt=prompt, mla_layout=layout)
            row[f"cumulative_{layout}"] = float(r["cumulative"])
            row[f"per_token_{layout}"] = float(r["per_token"])
        rows.append(row)
    return rows


def run_generations(path: str) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
    """A run's (or report's) generated tokens per answered sample, per suite, and its prompt tokens;
    from the samples' completions, so a schema-1 report without `compute` has them too."""
    from m1bench.reports.load import load_report
    from m1bench.reports.schema import ReportError

    loaded = load_report(path)
    if not loaded.samples:
        raise ReportError(f"{loaded.where}: no per-sample records (samples.jsonl) to take generation lengths from")
    gen: dict[str, list[int]] = {}
    prompts = []
    for rec in loaded.samples:
        if rec["status"] == "ok" and rec.get("completion"):
            gen.setdefault(rec["suite"], []).append(int(rec["completion"]["completion_tokens"]))
            prompts.append(int(rec["completion"]["prompt_tokens"]))
    if not gen:
        raise ReportError(f"{loaded.where}: no answered sample to take generation lengths from")
    return {k: np.asarray(v) for k, v in gen.items()}, np.asarray(prompts), loaded.where


def run_flops(specs: dict, gen: dict[str, np.ndarray], prompts: np.ndarray, mla_layout: str) -> dict:
    """The run's own generation lengths priced on each model: total FLOPs over its samples, each after
    the run's median prompt (as the curves are drawn)."""
    lengths = np.concatenate(list(gen.values()))
    prompt = int(np.median(prompts))
    return {n: float(F.total(F.generation_flops(s, lengths, prompt, mla_layout)).sum()) for n, s in specs.items()}


def cmd_flops(args):
    from m1bench.reports.schema import ReportError

    run = None
    if args.from_run:
        try:
            run = run_generations(args.from_run)
        except ReportError as e:
            console.print(f"[red]error:[/] {e}")
            raise SystemExit(2) from None
        longest = int(max(v.max() for v in run[0].values()))
        args.max_gen = args.max_gen or max(2 * longest, 8)
        args.prompt = int(np.median(run[1])) if args.prompt is None else args.prompt
    args.max_gen, args.prompt = args.max_gen or 131072, args.prompt or 0
    specs = {name: load_spec(name) for name in args.models}
    env = environment("cpu")
    lengths = np.unique(np.geomspace(1, args.max_gen, args.points).astype(np.int64))  # even on the log axes
    cumulative = {n: F.total(F.generation_flops(s, lengths, args.prompt, args.mla_layout)) for n, s in specs.items()}
    per_token = {n: F.total(F.decode_flops(s, lengths + args.prompt - 1, args.mla_layout)) for n, s in specs.items()}
    marks = sorted({1024, 32768, 65536, 100_000, args.max_gen} & set(range(1, args.max_gen + 1)))

    table = Table(title=f"Analytic forward FLOPs (prompt {args.prompt}, MLA layout {args.mla_layout})")
    for col in ("model", "layers", "params total", "active (blocks)", *[f"per token @{m}" for m in marks],
                f"cumulative {args.max_gen}"):
        table.add_column(col, justify="right")
    models = {}
    for name, s in specs.items():
        p = s.params()
        tok = {m: float(F.total(F.decode_flops(s, m + args.prompt - 1, args.mla_layout))) for m in marks}
        gen = F.generation_flops(s, args.max_gen, args.prompt, args.mla_layout)
        at_max = F.decode_flops(s, args.max_gen + args.prompt - 1, args.mla_layout)
        models[name] = {"summary": s.summary(), "source": s.source, "params": p,
                        "per_token_flops": {str(m): v for m, v in tok.items()},
                        "per_token_by_component_at_max": {c: float(at_max[c]) for c in F.COMPONENTS},
                        "cumulative_by_component_at_max": {c: float(gen[c]) for c in F.COMPONENTS}}
        table.add_row(name, s.summary().split(": ")[1], _g(p["total"]), _g(p["blocks_active"]),
                      *[_g(tok[m]) for m in marks], _g(F.total(gen)))
    console.print(table)

    comp = Table(title=f"Per-token FLOPs by component at position {args.max_gen}")
    comp.add_column("component")
    for name in specs:
        comp.add_column(name, justify="right")
    for c in F.COMPONENTS:
        if any(models[n]["per_token_by_component_at_max"][c] for n in specs):
            comp.add_row(c, *[_g(models[n]["per_token_by_component_at_max"][c]) for n in specs])
    console.print(comp)

    claim = paper_claim(args.reference, args.baseline, args.prompt, args.max_gen)
    ct = Table(title=f"FLOPs of {args.reference} / {args.baseline} after a {args.prompt}-token prompt "
                     "(paper, no prompt: < 50% at 64K, about 25% at 100K)")
    for col in ("generated", "cumulative (naive MLA)", "per token (naive MLA)", "cumulative (absorbed MLA)",
                "per token (absorbed MLA)", "paper"):
        ct.add_column(col, justify="right")
    for r in claim:
        ct.add_row(f"{r['gen_tokens']:,}", f"{r['cumulative_naive']:.1%}", f"{r['per_token_naive']:.1%}",
                   f"{r['cumulative_absorbed']:.1%}", f"{r['per_token_absorbed']:.1%}", r["paper_claim"])
    console.print(ct)

    run_payload = None
    if run is not None:
        gen, prompts, where = run
        priced = run_flops(specs, gen, prompts, args.mla_layout)
        ratio = priced[args.reference] / priced[args.baseline] if {args.reference, args.baseline} <= set(priced) else None
        run_payload = {"source": where, "prompt_tokens_median": int(np.median(prompts)),
                       "generated_tokens": {k: v.tolist() for k, v in gen.items()},
                       "flops_total": priced, f"{args.reference}_over_{args.baseline}": ratio}
        rt = Table(title=f"This run's generation lengths ({where}): {sum(map(len, gen.values()))} samples")
        for col in ("suite", "samples", "mean", "p50", "p90", "max"):
            rt.add_column(col, justify="right")
        for k, v in gen.items():
            rt.add_row(k, str(len(v)), f"{v.mean():.1f}", f"{np.median(v):g}", f"{np.percentile(v, 90):g}", str(v.max()))
        console.print(rt)
        if ratio is not None:
            console.print(f"this run's lengths: {args.reference} = {ratio:.1%} of {args.baseline}'s FLOPs")

    stem = Path(args.out)
    from m1bench.harness.profile.plots import flops_curves
    plots = flops_curves(lengths, cumulative, per_token, stem, provenance_line(env, f"analytic, MLA {args.mla_layout}"),
                         args.prompt, args.baseline if args.baseline in cumulative else None,
                         run_lengths=None if run is None else run[0])
    payload = {"kind": "profile_flops", "environment": env, "conventions": F.CONVENTIONS, "prompt": args.prompt,
               "mla_layout": args.mla_layout, "max_gen": args.max_gen, "models": models, "paper_claim": claim,
               "curves": {"gen_tokens": lengths.tolist(),
                          "cumulative_flops": {n: v.tolist() for n, v in cumulative.items()},
                          "per_token_flops": {n: v.tolist() for n, v in per_token.items()}},
               "plots": [_relative(p, stem.parent) for p in plots], **({"run": run_payload} if run_payload else {})}
    path = _write_json(stem.with_suffix(".json"), payload)
    if args.conventions:
        print(F.CONVENTIONS)
    console.print(f"wrote {path} and {', '.join(map(str, plots))}")


# ---- count -----------------------------------------------------------------------------------------

def cmd_count(args):
    import torch

    from m1bench.harness.profile.counted import count_generation
    from m1bench.model.arch import m1_twin_config
    from m1bench.model.m1 import M1ForCausalLM
    from m1bench.model.presets import preset
    torch.manual_seed(args.seed)
    configs = {args.preset: preset(args.preset)}
    if args.twin:
        configs[f"{args.preset}-softmax"] = m1_twin_config(configs[args.preset])
    results = {}
    with _progress() as bar:
        task = bar.add_task("counting", total=len(configs))
        for name, cfg in configs.items():
            model = M1ForCausalLM(cfg).eval()
            steps = count_generation(model, args.chunks, args.decode, seed=args.seed)
            results[name] = {"steps": [r for s in steps for r in s.rows()], "uncounted": [s.uncounted for s in steps]}
            bar.advance(task)
    # One line per (model, phase, component), summed over the forwards of that phase.
    table = Table(title=f"Counted (FlopCounterMode) vs analytic FLOPs: prefill chunks {args.chunks}, "
                        f"{args.decode} decode steps")
    for col in ("model", "phase", "component", "counted", "analytic", "max rel diff", "note"):
        table.add_column(col, justify="left" if col in ("model", "phase", "component") else "right")
    notes = {}
    for name, res in results.items():
        groups = {}
        for r in res["steps"]:
            g = groups.setdefault((r["phase"], r["component"]), {"counted": 0.0, "seen": 0.0, "rel": 0.0, "notes": set()})
            g["counted"] += r["counted"]
            g["seen"] += r["analytic_seen"]
            g["rel"] = max(g["rel"], r["rel_diff"])
            if r["note"]:
                g["notes"].add(re.sub(r"\d+ x \d+", "T x S", r["note"].split(" (causal")[0]))
        for (phase, comp), g in groups.items():
            marks = "".join(f"[{notes.setdefault(n, len(notes) + 1)}]" for n in sorted(g["notes"]))
            table.add_row(name, phase, comp, _g(g["counted"]), _g(g["seen"]), f"{g['rel']:.2%}", marks)
    console.print(table)
    for n, i in notes.items():
        console.print(f"[{i}] {n}", markup=False)
    worst = max(r["rel_diff"] for res in results.values() for r in res["steps"])
    console.print(f"largest relative difference over all components: {worst:.3%} (tolerance 2%)")
    path = _write_json(Path(args.out).with_suffix(".json"), {
        "kind": "profile_count", "environment": environment("cpu"), "conventions": F.CONVENTIONS,
        "chunks": args.chunks, "decode_steps": args.decode, "max_rel_diff": worst, "models": results})
    console.print(f"wrote {path}")


# ---- latency ---------------------------------------------------------------------------------------

def _fold_kernel_bench(paths: list[str]) -> list[dict]:
    """Rows of the kernels issue's benchmark JSON (harness/bench/lightning.py) in this module's row format."""
    rows = []
    for p in paths:
        data = json.loads(Path(p).read_text())
        for r in data.get("prefill", {}).get("rows", []):
            for impl, key in (("lightning (kernels bench)", "ours_ms"), ("sdpa (kernels bench)", "sdpa_ms"),
                              ("fla (kernels bench)", "fla_ms")):
                if key in r:
                    rows.append({"phase": "prefill", "impl": impl, "context": r["T"], "median_ms": r[key], "source": p})
    return rows


def cmd_latency(args):
    from m1bench.harness.profile.latency import DTYPES, build_pair, kernel_latency, model_latency
    from m1bench.model.presets import preset
    import torch

    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    env = environment(device)
    config = preset(args.preset)
    models = build_pair(config, device, dtype, seed=args.seed)
    settings = {"preset": args.preset, "dtype": args.dtype, "device": str(device), "warmup": args.warmup,
                "repeats": args.repeats, "decode_warmup": 2, "decode_steps": args.decode_steps,
                "chunk": args.chunk, "contexts": args.contexts, "twin_max_context": args.twin_max_context,
                "single_run_from": args.single_run_from, "batch_size": 1}
    results, kernels = {}, []
    stem = Path(args.out)

    def save(**extra):  # after every context, so a run cut short keeps what it measured
        _write_json(stem.with_suffix(".json"), {
            "kind": "profile_latency", "environment": env, "settings": settings,
            "kernel_settings": {"heads": args.kernel_heads, "head_dim": args.kernel_head_dim,
                                "kv_heads": args.kernel_kv_heads, "contexts": args.kernel_contexts, "folded": args.fold},
            "model": results, "speedup": _speedups(results), "kernels": kernels, **extra})

    with _progress() as bar:
        if args.kernel_contexts:
            task = bar.add_task("kernels: lightning vs SDPA", total=4 * len(args.kernel_contexts))

            def on_row(r):
                kernels.append(r)
                bar.advance(task)
                save()
            kernel_latency(args.kernel_contexts, heads=args.kernel_heads, head_dim=args.kernel_head_dim,
                           kv_heads=args.kernel_kv_heads, device=device, dtype=dtype, on_row=on_row)
        kernels += _fold_kernel_bench(args.fold)
        for name in args.variants:
            contexts = [c for c in args.contexts if name == "hybrid" or c <= args.twin_max_context]
            task = bar.add_task(f"{name} prefill+decode", total=len(contexts))
            model = models.pop(name)
            results[name] = []

            def on_context(r, name=name, task=task):
                results[name].append(r)
                bar.advance(task)
                save()
            model_latency(model, contexts, warmup=args.warmup, repeats=args.repeats,
                          decode_steps=args.decode_steps, chunk=args.chunk, time_budget_s=args.time_budget_s,
                          single_run_from=args.single_run_from, on_context=on_context)
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        models.clear()
    _report_latency(json.loads(stem.with_suffix(".json").read_text()), stem)


def cmd_replot(args):
    payload = json.loads(Path(args.json).read_text())
    report = {"profile_latency": _report_latency, "profile_server": _report_server}.get(payload.get("kind"))
    if report is None:
        raise SystemExit(f"{args.json}: field 'kind' is {payload.get('kind')!r}; replot reads profile_latency "
                         "and profile_server JSON")
    source = Path(args.json)
    stem = Path(args.out) if args.out else source.with_name(source.stem + "_replot")
    if stem.with_suffix(".json").resolve() == source.resolve():
        raise SystemExit(f"--out {args.out}: replot writes new files, not over its input {source}")
    report(payload, stem)


def _report_latency(payload: dict, stem: Path):
    """Tables and plots of a latency JSON (also for one measured elsewhere, e.g. on the device machine)."""
    env, settings, results, kernels = payload["environment"], payload["settings"], payload["model"], payload["kernels"]
    speedups = _speedups(results)
    table = Table(title=f"Model latency: {settings['preset']} preset, {settings['dtype']}, {env['device']} "
                        "(runs = prefill warm-up+recorded / decode warm-up+recorded)")
    for col in ("model", "context", "chunk", "runs", "prefill s (median)", "prefill min..max", "prefill tok/s",
                "decode ms/token", "decode min..max"):
        table.add_column(col, justify="right")
    for name, rows in results.items():
        for r in rows:
            if "error" in r:
                table.add_row(name, f"{r['context']:,}", str(r.get("chunk", "")), "-", r["error"][:60], "-", "-", "-", "-")
                continue
            p, d = r["prefill_s"], r["decode_s"]
            runs = f"{r.get('warmup', '?')}+{r.get('repeats', '?')} / {r.get('decode_warmup', '?')}+{r.get('decode_steps', '?')}"
            table.add_row(name, f"{r['context']:,}", str(r.get("chunk", "")), runs, f"{p['median']:.4g}",
                          f"{p['min']:.3g}..{p['max']:.3g}",
                          f"{r['prefill_tok_per_s']:,.0f}", f"{d['median'] * 1e3:.4g}",
                          f"{d['min'] * 1e3:.3g}..{d['max'] * 1e3:.3g}")
    console.print(table)
    if speedups:
        st = Table(title="Hybrid speed-up over the softmax twin (twin time / hybrid time)")
        for col in ("context", "prefill", "decode step"):
            st.add_column(col, justify="right")
        for s in speedups:
            st.add_row(f"{s['context']:,}", f"{s['prefill']:.2f}x", f"{s['decode']:.2f}x")
        console.print(st)
    if kernels:
        kt = Table(title="Kernel latency (one layer, batch 1)")
        for col in ("phase", "impl", "context", "median ms", "p25..p75 ms"):
            kt.add_column(col, justify="right")
        for r in kernels:
            spread = f"{r['p25_ms']:.3g}..{r['p75_ms']:.3g}" if "p25_ms" in r else "-"
            kt.add_row(r["phase"], r["impl"], f"{r['context']:,}", f"{r['median_ms']:.4g}", spread)
        console.print(kt)

    from m1bench.harness.profile.plots import kernel_curves, latency_curves
    prov = provenance_line(env, f"{settings['preset']} preset, {settings['dtype']}, batch 1")
    curves = {name: {"context": [r["context"] for r in rows if "error" not in r],
                     "prefill_s": [r["prefill_s"]["median"] for r in rows if "error" not in r],
                     "decode_s": [r["decode_s"]["median"] for r in rows if "error" not in r]}
              for name, rows in results.items()}
    plots = latency_curves(curves, stem, prov) if any(c["context"] for c in curves.values()) else []
    if kernels:
        k = payload.get("kernel_settings", {})
        kprov = provenance_line(env, f"one layer: {k.get('heads')} heads (SDPA kv {k.get('kv_heads')}), "
                                     f"head_dim {k.get('head_dim')}, {settings['dtype']}, batch 1")
        plots += kernel_curves(kernels, stem.with_name(stem.name + "_kernels"), kprov)
    payload["plots"] = [_relative(p, stem.parent) for p in plots]
    _write_json(stem.with_suffix(".json"), payload)
    console.print(f"wrote {stem.with_suffix('.json')}" + (f" and {', '.join(map(str, plots))}" if plots else ""))


def _speedups(results: dict) -> list[dict]:
    if not {"hybrid", "softmax-twin"} <= set(results):
        return []
    ok = lambda rows: {r["context"]: r for r in rows if "error" not in r}  # noqa: E731
    h, t = ok(results["hybrid"]), ok(results["softmax-twin"])
    return [{"context": c, "prefill": t[c]["prefill_s"]["median"] / h[c]["prefill_s"]["median"],
             "decode": t[c]["decode_s"]["median"] / h[c]["decode_s"]["median"]} for c in sorted(h.keys() & t.keys())]


# ---- server ----------------------------------------------------------------------------------------

def cmd_server(args):
    from m1bench.harness.bench.stub_server import StubServer, words_responder
    from m1bench.harness.profile.server import profile_server
    if not args.endpoint and not args.stub:
        raise SystemExit("m1bench profile server: give --endpoint URL (an OpenAI-compatible /v1 base) or --stub")
    levels = len(args.prompt_words) * len(args.concurrency)
    total = sum(max(args.requests, c) for c in args.concurrency) * len(args.prompt_words)

    def run(endpoint: str):
        with _progress() as bar:
            task = bar.add_task(f"{levels} levels against {endpoint}", total=total)
            return asyncio.run(profile_server(endpoint, args.model, args.prompt_words, args.concurrency, args.requests,
                                              args.max_tokens, api_key=args.api_key, timeout_s=args.timeout_s,
                                              on_request=lambda: bar.advance(task)))
    if args.stub:
        with StubServer(words_responder, ttft_s=0.02, tpot_s=0.004, prefill_s_per_word=2e-5) as stub:
            rows, client = run(stub.url)
        endpoint = f"local stub ({stub.url})"
    else:
        rows, client = run(args.endpoint)
        endpoint = args.endpoint
    env = environment("cpu")
    env["device"] = f"client on {env['device']}; server: {endpoint}"
    stem = Path(args.out)
    payload = {"kind": "profile_server", "environment": env, "endpoint": endpoint, "client": client,
               "settings": {"model": args.model, "prompt_words": args.prompt_words, "concurrency": args.concurrency,
                            "requests_per_level": args.requests, "max_tokens": args.max_tokens, "temperature": 0.0,
                            "warmup_requests": 1},
               "levels": rows}
    _report_server(payload, stem)


def _report_server(payload: dict, stem: Path):
    rows, settings = payload["levels"], payload["settings"]
    table = Table(title=f"Server latency: {settings['model']} at {payload['endpoint']}")
    for col in ("prompt words", "prompt tok", "concurrency", "ok/err", "TTFT p50 ms", "TTFT p90 ms", "TPOT p50 ms",
                "e2e p50 s", "out tok/s", "req/s"):
        table.add_column(col, justify="right")
    ms = lambda x: "-" if x is None else f"{x * 1e3:.1f}"  # noqa: E731
    for r in rows:
        table.add_row(str(r["prompt_words"]), str(r["prompt_tokens"]), str(r["concurrency"]), f"{r['ok']}/{r['errors']}",
                      ms(r["ttft_p50_s"]), ms(r["ttft_p90_s"]), ms(r["tpot_p50_s"]), f"{r['e2e_p50_s'] or 0:.3f}",
                      f"{r['output_tok_per_s'] or 0:.1f}", f"{r['requests_per_s'] or 0:.2f}")
    console.print(table)
    from m1bench.harness.profile.plots import server_curves
    plots = server_curves(rows, stem, provenance_line(payload["environment"],
                                                      f"{settings['model']}, max_tokens {settings['max_tokens']}"))
    payload["plots"] = [_relative(p, stem.parent) for p in plots]
    path = _write_json(stem.with_suffix(".json"), payload)
    console.print(f"wrote {path} and {', '.join(map(str, plots))}")


# ---- parser ----------------------------------------------------------------------------------------

def add_parser(subparsers):
    p = subparsers.add_parser("profile", help="FLOPs and latency profiling (analytic, counted, measured)",
                              description=__doc__)
    sub = p.add_subparsers(dest="profile_command", required=True)

    f = sub.add_parser("flops", help="analytic FLOPs per token and cumulative vs generation length; the paper's claim",
                       description="Analytic forward FLOPs of each model vs generation length (table, JSON, plot) and "
                                   "the M1 / DeepSeek-R1 FLOPs ratios the paper's Figure 1 (right) states. Models: "
                                   f"{', '.join(NAMED)} or a path to a config.json.")
    f.add_argument("--models", type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
                   default=["m1", "m1-softmax", "deepseek-r1"], help="comma-separated names or config.json paths "
                   "(default: M1, its all-softmax twin and DeepSeek-R1)")
    f.add_argument("--max-gen", type=lambda s: _ints(s)[0], default=None,
                   help="longest generation (default 131072; with --from-run twice the run's longest)")
    f.add_argument("--prompt", type=lambda s: _ints(s)[0], default=None,
                   help="prompt tokens before generation (default 0; with --from-run the run's median prompt)")
    f.add_argument("--from-run", metavar="RUN_DIR|REPORT",
                   help="draw this run's generation-length distribution over the curves (a run directory, a report "
                   "directory or report.json) and price its lengths on each model")
    f.add_argument("--points", type=int, default=257, help="points on each curve")
    f.add_argument("--mla-layout", choices=F.MLA_LAYOUTS, default="naive", help="how DeepSeek's MLA is counted")
    f.add_argument("--reference", default="m1", help="numerator of the claim ratios")
    f.add_argument("--baseline", default="deepseek-r1", help="denominator of the claim ratios")
    f.add_argument("--conventions", action="store_true", help="also print the counting conventions")
    f.add_argument("--out", default=str(BENCH / "profile_flops"), help="output stem (.json, .png, .svg)")
    f.set_defaults(func=cmd_flops)

    c = sub.add_parser("count", help="counted (torch FlopCounterMode) vs analytic FLOPs of the reference model",
                       description="Run the reference model (CPU, PyTorch paths) under FlopCounterMode: prefill chunks "
                                   "then decode steps, each forward compared per component with the analytic model.")
    c.add_argument("--preset", default="tiny", help="model preset (tiny, small)")
    c.add_argument("--chunks", type=_ints, default=[300, 37], help="prefill chunk lengths (default 300,37)")
    c.add_argument("--decode", type=int, default=4, help="decode steps after the prefill")
    c.add_argument("--no-twin", dest="twin", action="store_false", help="skip the softmax twin")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default=str(BENCH / "profile_count"), help="output stem (.json)")
    c.set_defaults(func=cmd_count)

    lat = sub.add_parser("latency", help="model-level prefill/decode latency vs context, hybrid vs softmax twin; "
                                         "kernel-level lightning vs SDPA",
                         description="Prefill time and per-token decode time of the reference model vs context length "
                                     "for the hybrid and its softmax twin (shared weights where shared), plus one "
                                     "layer's attention kernels (lightning vs SDPA).")
    lat.add_argument("--preset", default="tiny", help="model preset (tiny on CPU, small on GPU)")
    lat.add_argument("--device", default=None,
                     help="cpu or cuda[:N] (default: cuda when available)")
    lat.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                     help="default: bfloat16 on CUDA, float32 on CPU")
    lat.add_argument("--contexts", type=_ints, default=[1024, 2048, 4096, 8192], help="context lengths (K/M suffixes)")
    lat.add_argument("--twin-max-context", type=lambda s: _ints(s)[0], default=1 << 62,
                     help="longest context for the softmax twin")
    lat.add_argument("--variants", type=lambda s: s.split(","), default=["hybrid", "softmax-twin"],
                     help="which of hybrid,softmax-twin to measure, in this order")
    lat.add_argument("--warmup", type=int, default=1, help="unrecorded prefill runs per context")
    lat.add_argument("--repeats", type=int, default=3, help="recorded prefill runs per context")
    lat.add_argument("--decode-steps", type=int, default=8, help="recorded decode steps per context (after 2 warm-up)")
    lat.add_argument("--chunk", type=lambda s: _ints(s)[0], default=8192, help="prefill chunk length")
    lat.add_argument("--single-run-from", type=lambda s: _ints(s)[0], default=None,
                     help="contexts from this length on get no warm-up and one recorded prefill")
    lat.add_argument("--time-budget-s", type=float, default=float("inf"),
                     help="stop growing the context once one length takes longer than this")
    lat.add_argument("--kernel-contexts", type=_ints, default=[], help="kernel-level lengths (empty: skip)")
    lat.add_argument("--kernel-heads", type=int, default=64, help="query heads of the kernel-level layer (M1: 64)")
    lat.add_argument("--kernel-kv-heads", type=int, default=8, help="SDPA KV heads (M1 softmax layers: 8)")
    lat.add_argument("--kernel-head-dim", type=int, default=128)
    lat.add_argument("--fold", nargs="*", default=[], help="kernels benchmark JSON files (harness/bench/lightning.py) to fold in")
    lat.add_argument("--seed", type=int, default=0)
    lat.add_argument("--out", default=None, help="output stem (default reports/bench/profile_latency_<device>)")
    lat.set_defaults(func=_latency_defaults)

    r = sub.add_parser("replot", help="tables and plots of a latency or server JSON (e.g. one measured on a GPU machine)",
                       description="Re-render the tables and PNG/SVG plots of a `profile latency` or `profile server` "
                                   "JSON file as new files (the input is left as it is; paths in the new JSON are "
                                   "relative to it).")
    r.add_argument("json", help="a profile_latency or profile_server JSON file")
    r.add_argument("--out", help="output stem (.json, .png, .svg; default: the input's stem + '_replot', beside it)")
    r.set_defaults(func=cmd_replot)

    s = sub.add_parser("server", help="TTFT, TPOT, e2e latency and throughput of an OpenAI-compatible endpoint",
                       description="Stream requests of several prompt lengths at several concurrency levels to an "
                                   "OpenAI-compatible endpoint and measure TTFT, TPOT, end-to-end latency and throughput.")
    s.add_argument("--endpoint", help="base URL, e.g. http://127.0.0.1:8000/v1")
    s.add_argument("--stub", action="store_true", help="start a local stub endpoint with known timing and profile it")
    s.add_argument("--model", default="stub", help="model name to send")
    s.add_argument("--api-key", default=None)
    s.add_argument("--prompt-words", type=_ints, default=[128, 1024], help="prompt lengths in words (~tokens)")
    s.add_argument("--concurrency", type=_ints, default=[1, 4, 16], help="requests in flight at once, per level")
    s.add_argument("--requests", type=int, default=16, help="requests per level (at least the concurrency)")
    s.add_argument("--max-tokens", type=int, default=64)
    s.add_argument("--timeout-s", type=float, default=600.0)
    s.add_argument("--out", default=str(BENCH / "profile_server"), help="output stem (.json, .png, .svg)")
    s.set_defaults(func=cmd_server)
    return p


def _latency_defaults(args):
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    args.out = args.out or str(BENCH / f"profile_latency_{torch.device(args.device).type}")
    cmd_latency(args)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="m1bench")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

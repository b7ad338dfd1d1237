"""The small FLOPs + latency profile the main job puts in its output: the paper-claim ratios and FLOPs
curves (analytic, instant) and the tiny reference model's hybrid-vs-twin latency at two short contexts
(seconds on CPU)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from m1bench.harness.core.provenance import environment, provenance_line
from m1bench.model import flops as F
from m1bench.harness.profile.latency import build_pair, model_latency
from m1bench.harness.profile.plots import flops_curves
from m1bench.model.arch import load_spec
from m1bench.model.presets import preset

MODELS = ("m1", "deepseek-r1", "qwen3-235b")


def small_profile(out_dir: str | Path, contexts=(256, 1024), device: str = "cpu") -> dict:
    """Writes flops.png/.svg under out_dir and returns a JSON-able summary."""
    out_dir = Path(out_dir)
    env = environment(device)
    specs = {n: load_spec(n) for n in MODELS}
    lengths = np.linspace(0, 131072, 129).astype(np.int64)[1:]
    plots = flops_curves(lengths, {n: F.total(F.generation_flops(s, lengths)) for n, s in specs.items()},
                         {n: F.total(F.decode_flops(s, lengths - 1)) for n, s in specs.items()},
                         out_dir / "flops", provenance_line(env, "analytic, MLA naive"), prompt=0)
    claim = {}
    for n in (32768, 65536, 100_000, 131072):
        r = F.flops_ratio(specs["m1"], specs["deepseek-r1"], n)
        claim[str(n)] = {"cumulative": float(r["cumulative"]), "per_token": float(r["per_token"])}
    latency = {}
    for name, model in build_pair(preset("tiny"), device, torch.float32).items():
        rows = model_latency(model, list(contexts), warmup=1, repeats=1, decode_steps=4)
        latency[name] = [{"context": r["context"], "prefill_s": r["prefill_s"]["median"],
                          "decode_ms": 1e3 * r["decode_s"]["median"]} for r in rows]
    return {"environment": env, "flops_ratio_m1_over_deepseek_r1": claim,
            "per_token_gflops_at_64k": {n: float(F.total(F.decode_flops(s, 65535))) / 1e9 for n, s in specs.items()},
            "tiny_latency": latency, "plots": [str(p) for p in plots],
            "note": "analytic FLOPs (m1bench profile flops --conventions); latency of the tiny preset on "
                    f"{env['device']}, 1 warm-up + 1 prefill run, 2 + 4 decode steps"}

"""The decode path's kernels under compute-sanitizer: a 4-layer slice of the `small` preset
(lightning, softmax, lightning, softmax) prefills prompts and decodes, eagerly and replaying its CUDA
graphs, at B=1, 2 and 64 (the Triton kernels pick other paths by batch): the norm + projection and
norm + router GEMVs (B=1, 2), the single-token expert GEMVs (B=1), the sorted experts (B=2, 64),
the norm kernels, routing kernel and cuBLAS (B=64), split-KV decode attention, RoPE + cache write,
lightning decode, all with programmatic dependent launch on Hopper.

    compute-sanitizer --tool memcheck python -m m1bench.harness.bench.decode_memcheck

Prints the tokens' agreement (graph vs eager); the sanitizer's summary says whether any access was
out of bounds or misaligned.
"""
import dataclasses
import json
import sys

import torch


def main() -> int:
    from m1bench.harness.bench.engine import agreement
    from m1bench.model.config import every_nth_softmax
    from m1bench.model.m1 import M1ForCausalLM
    from m1bench.model.presets import preset
    from m1bench.model.tiny import init_random
    if not torch.cuda.is_available():
        sys.exit("decode_memcheck needs a CUDA GPU")
    config = dataclasses.replace(preset("small"), num_hidden_layers=4, attn_type_list=every_nth_softmax(4, 2))
    model = init_random(M1ForCausalLM(config), 0).to("cuda", torch.bfloat16).eval()
    runs = {"b1": agreement(model, lengths=(7,), steps=3), "b2": agreement(model, lengths=(3, 40), steps=3),
            "b64": agreement(model, lengths=(5,) * 64, steps=2)}
    print(json.dumps(runs))
    return 0 if all(r["graph_equals_eager"] for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

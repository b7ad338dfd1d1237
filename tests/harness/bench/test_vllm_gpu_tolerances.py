"""The bf16 tolerances of the GPU vLLM benchmark (harness/bench/vllm_gpu.py) against what bf16 alone
does: the reference model on the benchmark's own seeded `small` checkpoint, run in bfloat16, against
itself in float32 on the same (bf16-rounded) weights. vLLM in bf16 is held to bounds above that
rounding error, and a token counts as clearly chosen only where the top-2 margin exceeds anything
rounding moved a log-prob by, so a flip there is an error, not noise."""
import torch

from m1bench.harness.bench import vllm_gpu
from m1bench.model.m1 import M1ForCausalLM
from m1bench.model.presets import preset
from m1bench.model.tiny import init_random


def test_tolerances_sit_above_the_reference_models_own_bf16_rounding():
    config = preset("small")
    fp32 = init_random(M1ForCausalLM(config), vllm_gpu.SEED).eval()
    with torch.no_grad():
        for p in fp32.parameters():
            p.copy_(p.to(torch.bfloat16).float())  # the checkpoint's bf16 weights
    bf16 = M1ForCausalLM(config)
    bf16.load_state_dict(fp32.state_dict())
    bf16 = bf16.to(torch.bfloat16).eval()
    ids = torch.tensor([vllm_gpu.random_prompt(400, vllm_gpu.SEED)])
    with torch.no_grad():
        want = torch.log_softmax(fp32(ids).float(), -1)[0]
        got = torch.log_softmax(bf16(ids).float(), -1)[0]
    err = (got - want).abs()
    assert err.max() < vllm_gpu.MARGIN_NATS < vllm_gpu.LOGPROB_MAX_NATS
    assert err.mean() < vllm_gpu.LOGPROB_MEAN_NATS
    # and the bounds are not so loose that anything passes: an off-by-one position is far outside them
    shifted = (want[1:] - want[:-1]).abs()
    assert shifted.mean() > 10 * vllm_gpu.LOGPROB_MEAN_NATS

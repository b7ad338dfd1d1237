"""The vLLM plugin's per-request lightning states (model/vllm_plugin/state.py) on a mixed vLLM batch,
against a float64 recurrence per request. Runs without vLLM; on CUDA it exercises the Triton kernels.

The batch: a continuing decode, a one-token prompt scheduled as a decode into a slot with another
request's leftovers, a fresh prompt, and a later chunk of a prompt whose earlier tokens are in its
slot. fp32 accumulation vs float64: agreement to ~1e-5 relative; a state leaking between slots or a
missed continuation is off by O(1).
"""
import pytest
import torch

from m1bench.kernels.lightning import naive as reference
from m1bench.model.vllm_plugin.state import lightning_batch

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_batch_matches_per_request_recurrence(device):
    g = torch.Generator().manual_seed(0)
    H, d, n_slots = 4, 32, 6
    slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625])
    # (slot, tokens already in the slot's state, new tokens this step); decodes first, as vLLM orders them
    requests = [(4, 4, 1), (1, 0, 1), (0, 0, 7), (3, 3, 5)]
    num_decodes, num_prefills = 2, 2
    pool = torch.randn(n_slots, H, d, d, generator=g) * 3  # leftovers of earlier owners
    qs, ks, vs, want_o, want_state = [], [], [], [], {}
    for slot, done, new in requests:
        q, k, v = (torch.randn(1, done + new, H, d, generator=g) * 0.3 for _ in range(3))
        o, state = reference.recurrent(q.double(), k.double(), v.double(), slopes)
        if done:
            pool[slot] = reference.recurrent(q[:, :done].double(), k[:, :done].double(), v[:, :done].double(),
                                             slopes)[1][0].float()
        qs.append(q[0, done:]), ks.append(k[0, done:]), vs.append(v[0, done:])
        want_o.append(o[0, done:])
        want_state[slot] = state[0]
    lens = torch.tensor([new for _, _, new in requests])
    before = pool.clone()
    out = lightning_batch(
        torch.cat(qs).to(device), torch.cat(ks).to(device), torch.cat(vs).to(device), slopes.to(device),
        pool := pool.to(device), torch.tensor([s for s, _, _ in requests], dtype=torch.int32, device=device),
        torch.tensor([done + new for _, done, new in requests], device=device),
        torch.cat([torch.zeros(1, dtype=torch.long), lens.cumsum(0)]).to(device, torch.int32),
        num_decodes=num_decodes, num_decode_tokens=num_decodes, num_prefills=num_prefills)
    torch.testing.assert_close(out.cpu().double(), torch.cat(want_o), rtol=1e-4, atol=1e-5)
    for slot, state in want_state.items():
        torch.testing.assert_close(pool[slot].cpu().double(), state, rtol=1e-4, atol=1e-5)
    for slot in set(range(n_slots)) - set(want_state):  # slots of no request in the batch keep their contents
        assert torch.equal(pool[slot].cpu(), before[slot])

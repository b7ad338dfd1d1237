"""Safetensors checkpoints in the Hugging Face layout with M1 parameter names.

Loading builds the model on the meta device, allocates it once in the requested dtype, then streams
tensors shard by shard (a real 456B checkpoint never sits in memory twice). Checkpoints in
transformers' MiniMax naming (packed `mlp.experts.gate_up_proj`) are mapped onto M1 names.
"""
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from m1bench.harness.core.files import InputError, read_json
from m1bench.model.config import M1Config
from m1bench.model.m1 import M1ForCausalLM

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class CheckpointError(InputError):
    """A checkpoint is missing, unreadable, has extra or misshaped tensors; the message names them."""


def open_safetensors(path: Path, error: type[InputError] = CheckpointError):
    """safe_open on CPU; a file that is not whole safetensors (empty, cut short) fails naming it."""
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except SafetensorError as e:
        raise error(f"{path}: not a complete safetensors file ({path.stat().st_size:,} bytes; {e})") from None


# ---- transformers <-> M1 names ----------------------------------------------------------------
_HF_EXPERTS = re.compile(r"^(model\.layers\.\d+)\.mlp\.experts\.(gate_up_proj|down_proj)$")
_HF_GATE = re.compile(r"^(model\.layers\.\d+)\.mlp\.gate\.weight$")


def from_transformers_names(name: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """One transformers MiniMax tensor -> the M1-named tensors it holds."""
    if m := _HF_GATE.match(name):
        return [(f"{m[1]}.block_sparse_moe.gate.weight", tensor)]
    if m := _HF_EXPERTS.match(name):
        prefix = f"{m[1]}.block_sparse_moe.experts"
        if m[2] == "down_proj":  # [E, hidden, inter]
            return [(f"{prefix}.{e}.w2.weight", tensor[e]) for e in range(tensor.shape[0])]
        w1, w3 = tensor.chunk(2, dim=1)  # [E, 2*inter, hidden]: gate then up
        return ([(f"{prefix}.{e}.w1.weight", w1[e]) for e in range(tensor.shape[0])]
                + [(f"{prefix}.{e}.w3.weight", w3[e]) for e in range(tensor.shape[0])])
    return [(name, tensor)]


def to_transformers_state_dict(state: dict[str, torch.Tensor], config: M1Config) -> dict[str, torch.Tensor]:
    """M1-named weights -> transformers' MiniMaxForCausalLM names (packed experts)."""
    out = {k: v for k, v in state.items() if ".block_sparse_moe." not in k}
    E = config.num_local_experts
    for layer in range(config.num_hidden_layers):
        p = f"model.layers.{layer}"
        out[f"{p}.mlp.gate.weight"] = state[f"{p}.block_sparse_moe.gate.weight"]
        ex = lambda w: torch.stack([state[f"{p}.block_sparse_moe.experts.{e}.{w}.weight"] for e in range(E)])
        out[f"{p}.mlp.experts.gate_up_proj"] = torch.cat([ex("w1"), ex("w3")], dim=1)
        out[f"{p}.mlp.experts.down_proj"] = ex("w2")
    return out


# ---- save -------------------------------------------------------------------------------------
def save_checkpoint(model: M1ForCausalLM, directory, max_shard_bytes: int = 2 << 30, dtype=None) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    state = {k: (v.to(dtype) if dtype else v).contiguous() for k, v in model.state_dict().items()}
    config.torch_dtype = str(next(iter(state.values())).dtype).removeprefix("torch.")
    config.save(directory)
    shards, current, size = [], {}, 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = t
        size += nbytes
    shards.append(current)
    if len(shards) == 1:
        save_file(shards[0], directory / SINGLE, metadata={"format": "pt"})
        return directory
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, directory / fname, metadata={"format": "pt"})
        weight_map.update({k: fname for k in shard})
        total += sum(t.numel() * t.element_size() for t in shard.values())
    (directory / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    return directory


# ---- load -------------------------------------------------------------------------------------
def shard_files(directory: Path) -> list[Path]:
    if (directory / INDEX).exists():
        weight_map = read_json(directory / INDEX, CheckpointError)
        weight_map = weight_map.get("weight_map") if isinstance(weight_map, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
            raise CheckpointError(f"{directory / INDEX}: field 'weight_map' must map tensor names to shard files")
        files = [directory / f for f in dict.fromkeys(weight_map.values())]
    elif (directory / SINGLE).exists():
        files = [directory / SINGLE]
    else:
        files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{directory}: no safetensors weights ({INDEX} or {SINGLE})")
    for f in files:
        if not f.exists():
            raise CheckpointError(f"{f}: shard listed in {INDEX} is missing")
    return files


# Buffers transformers' MiniMaxForCausalLM saves with its weights: the lightning decay it derives
# from the slopes. The derived slopes are used (M1's formula, from config.json); a stored slope_rate
# is checked against them, and the decay tables (functions of the slopes and block size) are dropped.
_HF_DECAY = re.compile(r"model\.layers\.(\d+)\.self_attn\.(slope_rate|query_decay|key_decay|diagonal_decay)$")
SLOPE_RTOL = 1e-4  # transformers scales slopes by 1 - l/(L-1+1e-5) + 1e-5, M1 by 1 - l/(L-1) + 1e-5


def _check_stored_slopes(model: M1ForCausalLM, layer: int, tensor: torch.Tensor, where: str) -> None:
    ours = model.model.layers[layer].self_attn.slopes.cpu()
    got = tensor.flatten().float()
    if got.shape != ours.shape or not torch.allclose(got, ours, rtol=SLOPE_RTOL, atol=0):
        raise CheckpointError(f"{where}: slope_rate of layer {layer} ({got.tolist()}) is not the slopes its "
                              f"config.json derives ({ours.tolist()})")


def load_model(path, dtype: torch.dtype = torch.float32, device="cpu") -> M1ForCausalLM:
    directory = Path(path)
    config = M1Config.load(directory)
    with torch.device("meta"):
        model = M1ForCausalLM(config).to(dtype)  # free on meta; to_empty then allocates once, in dtype
    model.to_empty(device=device)
    params = dict(model.state_dict())
    loaded: set[str] = set()
    for shard in shard_files(directory):
        with open_safetensors(shard) as f:
            for raw_name in f.keys():
                if m := _HF_DECAY.match(raw_name):
                    if m[2] == "slope_rate":
                        _check_stored_slopes(model, int(m[1]), f.get_tensor(raw_name), f"{shard}: '{raw_name}'")
                    continue
                for name, tensor in from_transformers_names(raw_name, f.get_tensor(raw_name)):
                    if name not in params:
                        raise CheckpointError(f"{shard}: unexpected tensor '{raw_name}' (no such parameter in "
                                              f"{config.model_type} with this config)")
                    if tuple(tensor.shape) != tuple(params[name].shape):
                        raise CheckpointError(f"{shard}: tensor '{name}' has shape {tuple(tensor.shape)}, "
                                              f"the config wants {tuple(params[name].shape)}")
                    params[name].copy_(tensor)
                    loaded.add(name)
    missing = [n for n in params if n not in loaded]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{directory}: missing tensor '{missing[0]}'{more}")
    return model.eval()

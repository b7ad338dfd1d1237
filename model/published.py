"""Shape fields of the published config.json of the models the M1 paper compares against (facts, as
released on the Hugging Face hub; fields that do not change parameters or FLOPs are left out).
MiniMax-M1's own shapes are the `m1` preset (model/presets.py)."""

# deepseek-ai/DeepSeek-R1 config.json (same architecture as DeepSeek-V3; DeepSeek's inference
# config_671B.json: dim 7168, inter_dim 18432, moe_inter_dim 2048, n_layers 61, n_dense_layers 3,
# n_heads 128, 256 routed + 1 shared experts, 8 activated, q_lora 1536, kv_lora 512,
# qk_nope 128, qk_rope 64, v_head 128, vocab 129280). The one MTP module
# (num_nextn_predict_layers) is not part of ordinary decoding and is not counted.
DEEPSEEK_R1 = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "first_k_dense_replace": 3,
    "moe_layer_freq": 1,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "num_nextn_predict_layers": 1,
    "tie_word_embeddings": False,
}

# Qwen/Qwen3-235B-A22B config.json: 94 layers, hidden 4096, GQA 64 q / 4 kv heads of 128 (q/k RMSNorm),
# 128 experts top-8 of width 1536 on every layer, vocab 151936, untied embeddings.
QWEN3_235B_A22B = {
    "architectures": ["Qwen3MoeForCausalLM"],
    "model_type": "qwen3_moe",
    "hidden_size": 4096,
    "intermediate_size": 12288,
    "moe_intermediate_size": 1536,
    "num_hidden_layers": 94,
    "num_attention_heads": 64,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "vocab_size": 151936,
    "tie_word_embeddings": False,
}

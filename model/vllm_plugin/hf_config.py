"""transformers config classes for the M1 checkpoint schemas, so vLLM (which loads configs through
transformers' AutoConfig) can read `model_type` "minimax_m1" / "minimax_text_01" without remote code.

The classes only carry the fields; validation is M1Config's (the plugin model builds one from them).
"""
from transformers import PretrainedConfig


class MiniMaxM1Config(PretrainedConfig):
    model_type = "minimax_m1"

    def __init__(self, attn_type_list=None, head_dim=None, rotary_dim=None, rope_theta=10_000_000.0,
                 rms_norm_eps=1e-5, postnorm=True, tie_word_embeddings=False, **kwargs):
        self.attn_type_list = attn_type_list
        self.head_dim = head_dim
        self.rotary_dim = rotary_dim
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.postnorm = postnorm
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "intermediate_size", "num_local_experts", "num_experts_per_tok",
                     "max_position_embeddings"):
            if name in kwargs:
                setattr(self, name, kwargs.pop(name))
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


class MiniMaxText01Config(MiniMaxM1Config):
    model_type = "minimax_text_01"

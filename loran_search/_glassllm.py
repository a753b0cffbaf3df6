r"""Convert glassllm's NumPy LLaMA (``en.npz`` + ``en.tokenizer.json``) to transformers.

glassllm is a 4-layer LLaMA (RMSNorm, RoPE, grouped-query attention, SwiGLU, tied embeddings)
whose weights are stored as ``x @ W`` matrices (``d_in × d_out``); transformers' ``nn.Linear``
stores ``W.T``. Two details need care:

* **RoPE layout.** glassllm rotates interleaved coordinate pairs ``(2i, 2i+1)`` of each head by
  ``m·θ_i``; HF LLaMA rotates half-split pairs ``(i, i + d_k/2)``. Permuting the output rows of
  ``q_proj`` and ``k_proj`` *per head* as ``[0, 2, 4, …, d_k−2, 1, 3, …, d_k−1]`` maps one layout
  onto the other; ``q·k`` is unchanged because both sides get the same permutation.
* **Tokenizer.** glassllm's BPE: NFC-normalise, replace ``" "`` by ``"▁"``, split into chunks by
  the regex ``\n|▁*[^▁\n]+|▁+`` (merges never cross a chunk), then repeatedly merge the
  lowest-ranked adjacent pair; ids are ``[<pad>, <unk>, <bos>, <eos>] + alphabet + merges``; no
  BOS/EOS is added. The same pipeline is expressed with the ``tokenizers`` library (normalizer
  sequence, ``Split`` pre-tokenizer with ``isolated`` behaviour, ``BPE`` model), so the result is a
  ``PreTrainedTokenizerFast`` that the tasks use like any other. The parity test checks identical
  ids and logits against ``glassllm.load_pretrained("en")``.
"""

from __future__ import annotations

import json
from pathlib import Path

SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]
CHUNK_REGEX = r"\n|▁*[^▁\n]+|▁+"


def build_tokenizer(tokenizer_json: str | Path):
    """A ``PreTrainedTokenizerFast`` reproducing glassllm's ``Tokenizer.encode`` exactly."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers
    from tokenizers import Tokenizer as RawTokenizer
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    data = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    merges = [tuple(pair) for pair in data["merges"]]
    vocab_list = SPECIALS + list(data["alphabet"]) + [a + b for a, b in merges]
    if len(set(vocab_list)) != len(vocab_list):
        raise ValueError(f"{tokenizer_json}: duplicate tokens; cannot build a BPE vocabulary")
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    raw = RawTokenizer(BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=False))
    raw.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(" ", "▁")])
    raw.pre_tokenizer = pre_tokenizers.Split(Regex(CHUNK_REGEX), behavior="isolated")
    raw.decoder = decoders.Replace("▁", " ")
    raw.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        model_max_length=128,
    )


def rope_permutation(n_heads: int, d_k: int) -> list[int]:
    """Row order taking interleaved RoPE pairs to HF's half-split layout, for all heads."""
    per_head = list(range(0, d_k, 2)) + list(range(1, d_k, 2))
    return [h * d_k + j for h in range(n_heads) for j in per_head]


def convert_glassllm(npz_path: str | Path, tokenizer_json: str | Path, out_dir: str | Path) -> None:
    """Write a transformers ``LlamaForCausalLM`` folder (fp32 safetensors) plus tokenizer."""
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with np.load(npz_path) as z:
        cfg = json.loads(str(z["__config__"]))
        arrays = {k: z[k].astype(np.float32) for k in z.files if k != "__config__"}
    d, h, h_kv = cfg["d_model"], cfg["n_heads"], cfg["n_kv_heads"]
    d_k = d // h
    hidden = arrays["blocks.0.ffn.W1"].shape[1]
    config = LlamaConfig(
        vocab_size=cfg["vocab_size"],
        hidden_size=d,
        intermediate_size=hidden,
        num_hidden_layers=cfg["n_layers"],
        num_attention_heads=h,
        num_key_value_heads=h_kv,
        head_dim=d_k,
        max_position_embeddings=cfg["max_len"],
        rms_norm_eps=cfg["eps"],
        rope_parameters={"rope_type": "default", "rope_theta": float(cfg["rope_base"])},
        hidden_act="silu",
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        dtype=torch.float32,
    )
    model = LlamaForCausalLM(config)
    q_perm = rope_permutation(h, d_k)
    k_perm = rope_permutation(h_kv, d_k)

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arrays[name]))

    state: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": t("E"),
        "model.norm.weight": t("norm_f.gamma"),
        "lm_head.weight": t("E"),
    }
    for i in range(cfg["n_layers"]):
        p, b = f"model.layers.{i}.", f"blocks.{i}."
        state[p + "input_layernorm.weight"] = t(b + "norm1.gamma")
        state[p + "post_attention_layernorm.weight"] = t(b + "norm2.gamma")
        state[p + "self_attn.q_proj.weight"] = t(b + "attn.W_Q").T[q_perm].contiguous()
        state[p + "self_attn.k_proj.weight"] = t(b + "attn.W_K").T[k_perm].contiguous()
        state[p + "self_attn.v_proj.weight"] = t(b + "attn.W_V").T.contiguous()
        state[p + "self_attn.o_proj.weight"] = t(b + "attn.W_O").T.contiguous()
        state[p + "mlp.gate_proj.weight"] = t(b + "ffn.W1").T.contiguous()
        state[p + "mlp.up_proj.weight"] = t(b + "ffn.W3").T.contiguous()
        state[p + "mlp.down_proj.weight"] = t(b + "ffn.W2").T.contiguous()
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "lm_head.weight"]
    if missing or unexpected:
        raise ValueError(f"glassllm conversion mismatch: missing={missing} unexpected={unexpected}")
    model.tie_weights()
    out = Path(out_dir)
    model.save_pretrained(out)
    build_tokenizer(tokenizer_json).save_pretrained(out)

"""Model shapes: a model's attention read from its Transformers ``config.json``, for ``--model``.

``--model NAME`` takes a built-in model: its `BUILT_IN` entry is an excerpt of the ``config.json`` its
publisher ships on the Hugging Face Hub (the page is its ``source``), read by the same `read_config` that
``--model path/to/config.json`` uses, so a built-in and a file of one's own mean the same thing. What is read:

- heads: ``num_attention_heads`` (``decoder_attention_heads`` for Whisper's decoder); key/value heads:
  ``num_key_value_heads`` (default: as many); head dim: ``head_dim``, or ``hidden_size`` (``d_model``) / heads;
- the mask: causal for a language model, ``sliding:W`` where ``sliding_window`` is set and
  ``use_sliding_window`` is not false; none for a vision encoder (ViT, CLIP), whose N is its patches and a
  class token, (image_size / patch_size)² + 1; Gemma 2 alternates global and sliding layers, and each kind of
  layer is a configuration of its own (``layer_types`` lists them where the config has it);
- the score modification: ``softcap:C`` from ``attn_logit_softcapping``;
- Whisper's decoder cross-attention: ``max_target_positions`` text queries against ``max_source_positions``
  audio frames (N_q and N fixed, mask none); LLaVA: the language model of ``text_config``, its
  ``image_seq_length`` image tokens part of the causal sequence.

A shape is a list of configurations (each a dict of sweep fields); `harness.run.sweep` makes each a grid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ModelError(ValueError):
    """A model name or config.json that gives no shapes; the message is one line."""


VISION = ("vit", "clip_vision_model", "deit", "dinov2", "siglip_vision_model")
PLAIN = (*VISION, "whisper", "gpt2", "gpt_neox", "bert", "roberta")  # an ungated MLP: up, GELU, down
GEMMA = ("gemma", "gemma2", "gemma3", "gemma3_text")  # gated by a tanh GELU
SILU_BY_DEFAULT = ("llama", "mistral", "mixtral", "qwen2", "qwen3")  # a gated SiLU MLP when hidden_act is not given
FFN_KEYS = ("intermediate_size", "decoder_ffn_dim", "ffn_dim", "ffn_hidden_size", "n_inner")


@dataclass(frozen=True)
class ModelShape:
    """A model's attention shapes: ``spec`` is what ``--model`` was given (a built-in name or a path)."""

    spec: str
    configurations: tuple[tuple[tuple[str, Any], ...], ...]  # each a sorted tuple of (sweep field, value) pairs
    source: str = ""

    def grids(self) -> list[dict[str, Any]]:
        """One sweep grid per configuration, each naming the model."""
        return [{**dict(config), "models": (self,)} for config in self.configurations]

    def __str__(self) -> str:
        return self.spec


def _positive(config: dict, key: str, where: str, default: Any = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value


def read_config(config: dict[str, Any], where: str) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """The configurations of a Transformers ``config.json`` (as a dict); `ModelError` naming ``where``."""
    if not isinstance(config, dict):
        raise ModelError(f"{where}: a config.json holds one JSON object")
    kind = config.get("model_type", "")
    if kind == "llava" or ("text_config" in config and "num_attention_heads" not in config):
        return read_config(config.get("text_config") or {}, f"{where} (text_config)")
    if kind == "clip" and "vision_config" in config:
        return read_config({"model_type": "clip_vision_model", **config["vision_config"]}, f"{where} (vision_config)")
    whisper = kind == "whisper"
    heads_key = "decoder_attention_heads" if whisper else "num_attention_heads"
    if heads_key not in config:
        raise ModelError(f"{where}: no {heads_key}; not a Transformers attention config")
    heads = _positive(config, heads_key, where)
    heads_kv = _positive(config, "num_key_value_heads", where, heads) if config.get("num_key_value_heads") else heads
    if heads % heads_kv:
        raise ModelError(f"{where}: num_key_value_heads {heads_kv} does not divide {heads_key} {heads}")
    if config.get("head_dim") is not None:
        head_dim = _positive(config, "head_dim", where)
    else:
        hidden_key = "d_model" if whisper else "hidden_size"
        hidden = _positive(config, hidden_key, where)
        if hidden % heads:
            raise ModelError(f"{where}: {hidden_key} {hidden} is not a multiple of {heads_key} {heads}, and no head_dim")
        head_dim = hidden // heads
    shape = {
        "heads": (heads,),
        "heads_kv": (heads_kv,),
        "head_dim": (head_dim,),
        "layer": _layer(config, kind, heads * head_dim, where),
    }
    cap = config.get("attn_logit_softcapping")
    if cap is not None:
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap > 0:
            raise ModelError(f"{where}: attn_logit_softcapping must be a number above 0, got {cap!r}")
        shape["score_mods"] = (f"softcap:{float(cap):g}",)
    if whisper:  # the decoder's cross-attention: its text queries against the encoder's audio frames
        frames, text = _positive(config, "max_source_positions", where), _positive(config, "max_target_positions", where)
        return (_sorted({**shape, "masks": ("none",), "seq_lens": (frames,), "q_len": text}),)
    if kind in VISION:
        patches = (_positive(config, "image_size", where) // _positive(config, "patch_size", where)) ** 2
        return (_sorted({**shape, "masks": ("none",), "seq_lens": (patches + 1,)}),)
    return tuple(_sorted({**shape, "masks": (mask,)}) for mask in _layer_masks(config, kind, where))


def _layer(config: dict, kind: str, width: int, where: str) -> str:
    """The decoder layer's spec "mlp:hidden:ffn" (`variants.decoder.LayerShape`): plain GELU for the encoders and
    GPT-2's kin (PLAIN), GeGLU for Gemma's, SwiGLU where the activation is SiLU (the Llama kin, whose configs may
    leave it at its default); any other activation, an ungated MLP of its cost (GELU)."""
    hidden_key = "d_model" if kind == "whisper" else "hidden_size"
    hidden = _positive(config, hidden_key, where) if config.get(hidden_key) is not None else width
    ffn_key = next((key for key in FFN_KEYS if config.get(key)), None)
    ffn = _positive(config, ffn_key, where) if ffn_key else 4 * hidden
    act = config.get("hidden_activation") or config.get("hidden_act") or config.get("activation_function")
    act = str(act or ("silu" if kind in SILU_BY_DEFAULT else "gelu"))
    mlp = "gelu" if kind in PLAIN else "geglu" if kind in GEMMA else "swiglu" if act in ("silu", "swish") else "gelu"
    return f"{mlp}:{hidden}:{ffn}"


def _layer_masks(config: dict, kind: str, where: str) -> list[str]:
    """The masks of a language model's kinds of layer: causal, and sliding:W where a window is used."""
    window = config.get("sliding_window")
    if window is None or config.get("use_sliding_window") is False:
        return ["causal"]
    _positive(config, "sliding_window", where)
    types = set(config.get("layer_types") or (("full_attention", "sliding_attention") if kind == "gemma2" else ()))
    if types:
        return [mask for layer, mask in (("full_attention", "causal"), ("sliding_attention", f"sliding:{window}"))
                if layer in types]  # fmt: skip
    return [f"sliding:{window}"]


def _sorted(config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(config.items()))


def load_model(spec: str, what: str) -> ModelShape:
    """A built-in model by name, or a ``config.json`` by path; `ModelError` with one line otherwise."""
    if spec in BUILT_IN:
        source, excerpt = BUILT_IN[spec]
        return ModelShape(spec, read_config(excerpt, spec), source)
    path = Path(spec)
    if not path.suffix == ".json" and not path.is_file():
        raise ModelError(f"{what}: unknown model {spec!r}; built in: {', '.join(BUILT_IN)} (or a config.json path)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{what}: cannot read {spec}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{what}: {spec} is not JSON ({exc})") from None
    return ModelShape(spec, read_config(config, spec), str(path))


HUB = "https://huggingface.co/{}/blob/main/config.json"
# Excerpts of each publisher's config.json: the fields read above, as published.
BUILT_IN: dict[str, tuple[str, dict[str, Any]]] = {
    "llama-3-8b": (HUB.format("meta-llama/Meta-Llama-3-8B"),
                   {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
                    "intermediate_size": 14336, "hidden_act": "silu"}),
    "llama-3-70b": (HUB.format("meta-llama/Meta-Llama-3-70B"),
                    {"model_type": "llama", "hidden_size": 8192, "num_attention_heads": 64, "num_key_value_heads": 8,
                     "intermediate_size": 28672, "hidden_act": "silu"}),
    "mistral-7b": (HUB.format("mistralai/Mistral-7B-v0.1"),
                   {"model_type": "mistral", "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
                    "sliding_window": 4096, "intermediate_size": 14336, "hidden_act": "silu"}),
    "gemma-2-9b": (HUB.format("google/gemma-2-9b"),
                   {"model_type": "gemma2", "hidden_size": 3584, "num_attention_heads": 16, "num_key_value_heads": 8,
                    "head_dim": 256, "sliding_window": 4096, "attn_logit_softcapping": 50.0, "intermediate_size": 14336,
                    "hidden_activation": "gelu_pytorch_tanh"}),
    "qwen2-7b": (HUB.format("Qwen/Qwen2-7B"),
                 {"model_type": "qwen2", "hidden_size": 3584, "num_attention_heads": 28, "num_key_value_heads": 4,
                  "sliding_window": 131072, "use_sliding_window": False, "intermediate_size": 18944, "hidden_act": "silu"}),
    "vit-b-16": (HUB.format("google/vit-base-patch16-224"),
                 {"model_type": "vit", "hidden_size": 768, "num_attention_heads": 12, "image_size": 224, "patch_size": 16,
                  "intermediate_size": 3072, "hidden_act": "gelu"}),
    "vit-l-14-336": (HUB.format("openai/clip-vit-large-patch14-336"),
                     {"model_type": "clip", "vision_config": {"hidden_size": 1024, "num_attention_heads": 16,
                                                              "image_size": 336, "patch_size": 14,
                                                              "intermediate_size": 4096, "hidden_act": "quick_gelu"}}),
    "whisper-small": (HUB.format("openai/whisper-small"),
                      {"model_type": "whisper", "d_model": 768, "decoder_attention_heads": 12, "max_source_positions": 1500,
                       "max_target_positions": 448, "decoder_ffn_dim": 3072, "activation_function": "gelu"}),
    "llava-1.5-7b": (HUB.format("llava-hf/llava-1.5-7b-hf"),
                     {"model_type": "llava", "image_seq_length": 576,
                      "text_config": {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32,
                                      "intermediate_size": 11008, "hidden_act": "silu"}}),
}  # fmt: skip

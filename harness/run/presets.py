"""The presets: named sweeps, from the quick start to the reference GPU run, each with what it costs.

``attnbench sweep --preset NAME`` starts from one (`harness.run.sweep.build_sweep`); a flag or TOML key given
beside it overrides its field, in every one of its sub-grids too.
"""

from __future__ import annotations

from variants.masks import CAUSAL, NONE, Mask
from variants.score_mods import parse_score_mod

from ..measure.fields import normalize_settings
from ..measure.models import load_model
from .grid import Sweep

# Every variant of the registry that runs eagerly on a GPU, xformers included where it is installed.
GPU_EAGER = ("naive", "sdpa", "sdpa-flash", "sdpa-efficient", "sdpa-cudnn", "sdpa-math", "chunked-query", "chunked-online",
             "linear-elu", "performer-64", "performer-256", "nystrom-32", "nystrom-64", "linformer-128", "linformer-256",
             "xformers")  # fmt: skip

SLIDING_256 = Mask("sliding", 256)
ALIBI, SOFTCAP_50 = parse_score_mod("alibi"), parse_score_mod("softcap:50")
PRESETS: dict[str, Sweep] = {
    # Every variant available on the device, N = 128..4096, forward fp32: ~2.5 minutes on 2 CPU cores.
    "quick": Sweep(),
    # Quick plus causal, bf16 and forward+backward, N up to 8192. Trimmed to stay
    # under 15 minutes on a 2-core CPU: forward+backward of the quadratic-time
    # variants stops at N=4096 (at 8192 one call takes 1-5 s, and each case makes
    # about seven calls), and so do naive and sdpa-math forward (2-3 s a call at
    # 8192, and their O(N^2) memory is already plain by 4096); the linear-time
    # variants, and sdpa, sdpa-flash and the chunked ones forward, go to 8192.
    "default": Sweep(
        seq_lens=(128, 256, 512, 1024, 2048, 4096, 8192),
        dtypes=("float32", "bfloat16"),
        masks=(NONE, CAUSAL),
        modes=("fwd", "fwd_bwd"),
        max_time_s=0.5,
        max_seq_len={
            "naive": 4096,
            "sdpa-math": 4096,
            **{f"{name}:fwd_bwd": 4096 for name in ("sdpa", "sdpa-flash", "chunked-query", "chunked-online", "xformers")},
        },
    ),
    # What practitioners compare on (Llama-like heads: H=32, H_kv=8, D=128), on 2 CPU cores:
    # decoding one query against 1K..64K cached keys (memory-bound; GB/s against the copy bandwidth), B = 1
    # and 8; sliding, document and prefix-LM masks at N = 1K..4K; the banded mask to 16K for the kernels
    # that skip hidden blocks (the others cost O(N^2) under any mask: a prefix mask at 16K is ~2 TFLOP a call);
    # ALiBi causal at 1K..8K, a Gemma-2-like soft-capped window at 8K, and packed documents at 4K and 8K
    # (51 minutes with three rounds a case, measured 2026-11-30).
    "workloads": Sweep(
        variants=("naive", "sdpa", "chunked-query", "chunked-online"),
        heads=(32,),
        heads_kv=(8,),
        head_dim=(128,),
        max_time_s=0.3,
        grids=(
            {"modes": ("decode",), "masks": (CAUSAL,), "batch": (1, 8), "seq_lens": tuple(2**i for i in range(10, 17))},
            {"modes": ("fwd",), "masks": (SLIDING_256, Mask("document", 8), Mask("prefix", 256)), "seq_lens": (1024, 2048, 4096)},
            {
                "modes": ("fwd",),
                "masks": (SLIDING_256,),
                "seq_lens": (8192, 16384),
                "variants": ("chunked-query", "chunked-online"),
            },
            # ALiBi (BLOOM, MPT) under the causal mask: SDPA takes it as a dense float bias of N^2·H
            # entries (2 GiB at 8K), and naive and SDPA cost ~35 s a call at 8K here, so they stop at 4K.
            {
                "modes": ("fwd",),
                "masks": (CAUSAL,),
                "score_mods": (ALIBI,),
                "seq_lens": (1024, 2048, 4096, 8192),
                "max_seq_len": {"naive": 4096, "sdpa": 4096},
            },
            # Gemma-2-like: logits soft-capped at 50 inside a 4096-token window, H = 16, H_kv = 8, D = 256.
            # SDPA cannot express a soft cap; naive would hold 4 GiB of scores: the chunked kernels run it.
            {
                "modes": ("fwd",),
                "masks": (Mask("sliding", 4096),),
                "score_mods": (SOFTCAP_50,),
                "seq_lens": (8192,),
                "heads": (16,),
                "heads_kv": (8,),
                "head_dim": (256,),
                "variants": ("chunked-query", "chunked-online"),
            },
            # Packed documents of unequal length (drawn), against padding them to a batch and nested tensors.
            {
                "modes": ("fwd",),
                "masks": tuple(Mask("docs", k) for k in (2, 8, 32)),
                "seq_lens": (4096,),
                "variants": ("sdpa", "sdpa-padded", "sdpa-nested", "chunked-query", "chunked-online"),
            },
            {
                "modes": ("fwd",),
                "masks": (Mask("docs", 8),),
                "seq_lens": (8192,),
                "variants": ("sdpa", "sdpa-padded", "chunked-online"),
            },
            # Decode as served: 8 sequences of up to 8K keys, every cache full or of drawn lengths (the longest
            # 8K), contiguous or in pages of 16 and 256 tokens in a shuffled pool: what paging and unequal
            # lengths cost, each against the same batch contiguous and full, in one run.
            {
                "modes": ("decode",),
                "masks": (CAUSAL,),
                "batch": (8,),
                "seq_lens": (8192,),
                "kv_lens": ("equal", "drawn"),
                "variants": ("naive", "sdpa", "chunked-online", "flex"),
            },
            {
                "modes": ("decode",),
                "masks": (CAUSAL,),
                "batch": (8,),
                "seq_lens": (8192,),
                "kv_layouts": ("paged:16", "paged:256"),
                "kv_lens": ("equal", "drawn"),
                "variants": ("gather", "chunked-online", "flex"),
            },
        ),  # fmt: skip
    ),
    # "gpu", the reference GPU sweep: below, after its grids (GPU_GRIDS).
    # N up to 65536; cases predicted not to fit in memory are recorded as skipped.
    "full": Sweep(
        seq_lens=tuple(2**i for i in range(7, 17)),
        dtypes=("float32", "bfloat16"),
        masks=(NONE, CAUSAL),
        modes=("fwd", "fwd_bwd"),
        timeout_s=600.0,
    ),
}


def _of_models(names: tuple[str, ...], **fields) -> tuple[dict, ...]:
    """Each model's own grids (its heads, KV heads, head dim, mask, score modification and layer; one per kind of
    layer), with ``fields`` over them: sub-grids of a preset, as ``--model`` makes them."""
    grids = (grid for name in names for grid in load_model(name, "the models preset").grids())
    return tuple(normalize_settings({**grid, **fields}, "the models preset") for grid in grids)


LANGUAGE = ("llama-3-8b", "llama-3-70b", "mistral-7b", "gemma-2-9b", "qwen2-7b", "llava-1.5-7b")
VISION = ("vit-b-16", "vit-l-14-336")
MODEL_VARIANTS = ("sdpa", "hf-sdpa", "hf-eager")  # PyTorch's, and two of Transformers' attn_implementation
# The model's-eye view, forward fp32 on 2 CPU cores: each model of the table at its own shapes, the language
# models at N = 1K..4K (layers too), the vision encoders at their own N and batch 1..64, Whisper's cross-attention at its
# own lengths; chunked-online and Transformers' flex path where a soft cap needs them (Gemma 2) and beside
# Llama-3-8B; the share of the layer (--scope layer) for Llama-3-8B, Gemma 2's global layer and ViT-B/16.
# N = 8K and 16K belong to a GPU: at 8K one sdpa call of llama-3-70b's shape takes ~7 s here, and a
# Llama-3-8B layer at 4K ~10 s (~2.5 minutes a case over its rounds). hf-eager stops at 2K: its O(N^2) scores
# of llama-3-70b's 64 heads (4 GiB at 4K) ran out of memory. Measured 2026-11-30: 104 cases in 1219 s.
PRESETS["models"] = Sweep(
    variants=MODEL_VARIANTS,
    max_time_s=0.3,
    grids=(
        *_of_models(LANGUAGE, seq_lens=(1024, 2048, 4096), max_seq_len={"hf-eager": 2048}),
        *_of_models(("llama-3-8b", "gemma-2-9b"), seq_lens=(1024, 2048, 4096), variants=("chunked-online", "hf-flex")),
        *_of_models(VISION, batch=(1, 8, 64)),
        *_of_models(("whisper-small",)),
        *_of_models(("llama-3-8b",), seq_lens=(1024, 2048, 4096), scopes=("attention", "layer"), variants=("sdpa",)),
        *_of_models(
            ("gemma-2-9b",),
            seq_lens=(1024, 2048, 4096),
            scopes=("attention", "layer"),
            masks=(CAUSAL,),
            variants=("chunked-online",),
        ),  # fmt: skip
        *_of_models(("vit-b-16",), batch=(1, 8, 64), scopes=("attention", "layer"), variants=("sdpa",)),
    ),
)


FA_HIDDEN, FA_TOKENS = 2048, 16384  # the FlashAttention papers' benchmark: hidden 2048, batch x N = 16K tokens
FA_CORE = ("sdpa-cudnn", "sdpa-flash", "sdpa")
LLAMA_3 = {"heads": (32,), "heads_kv": (8,), "head_dim": (128,)}  # Llama-3-8B's grouped-query attention
# The reference GPU run's grids, on one H200 in about 8 minutes of a lent machine's window, first pass first:
# - the FlashAttention papers' shapes (head dim 64 and 128 at hidden 2048, 16K tokens as batch x N), causal and
#   not, forward and forward+backward: cuDNN and FA2 (sdpa's backends) beside their published figures; flex's
#   forward and backward at head dim 64; energy per call (NVML) on these and the next grid's rows;
# - flex as compiled by default (dynamic shapes) and autotuned per shape (max-autotune-no-cudagraphs) against
#   the flash and cuDNN backends, B = 1, H = 16, D = 64 and 128, N = 4K..32K, forward (the autotuned last:
#   4 to 15 s of compiling a shape on the H200);
# - Llama-3-8B's GQA (32/8/128), causal, forward and backward; its decode over a batch of 8 caches, 1K..128K,
#   read against the copy bandwidth; sliding-window and packed-document masks;
# - the approximations and the materializing kernels at B = 1, H = 16, D = 64, for the complexity fits.
GPU_GRIDS = (
    *({"seq_lens": (n,), "batch": (FA_TOKENS // n,), "heads": (FA_HIDDEN // d,), "head_dim": (d,),
       "masks": (NONE, CAUSAL), "modes": ("fwd", "fwd_bwd"), "variants": FA_CORE[:2] + (("flex",) if d == 64 else ()),
       "energy": True}
      for d in (64, 128) for n in (4096, 16384)),
    {"seq_lens": (4096, 8192, 16384, 32768), "heads": (16,), "head_dim": (64, 128), "variants": FA_CORE + ("flex",),
     "energy": True},
    {"seq_lens": (4096, 16384), "masks": (CAUSAL,), "modes": ("fwd", "fwd_bwd"), **LLAMA_3,
     "variants": FA_CORE + ("sdpa-efficient", "flex")},
    {"seq_lens": (1024, 8192, 32768, 131072), "batch": (8,), "masks": (CAUSAL,), "modes": ("decode",), **LLAMA_3,
     "variants": ("sdpa", "sdpa-flash", "sdpa-efficient", "flex", "naive")},
    {"seq_lens": (4096, 16384), "heads": (16,), "masks": (Mask("sliding", 1024), Mask("docs", 8)),
     "variants": ("sdpa", "flex", "local", "sdpa-nested", "chunked-online")},
    {"seq_lens": (4096, 8192, 32768), "heads": (16,), "variants": ("sdpa-math", "naive", "chunked-online",
     "linear-elu", "performer-64", "nystrom-64", "linformer-256", "xformers")},
    {"seq_lens": (4096, 8192, 16384, 32768), "heads": (16,), "head_dim": (64, 128), "variants": ("flex",),
     "compile_mode": "max-autotune-no-cudagraphs"},
)  # fmt: skip
PRESETS["gpu"] = Sweep(devices=("cuda",), dtypes=("bfloat16",), max_time_s=0.3, timeout_s=600.0,
                       grids=tuple(normalize_settings(grid, "the gpu preset") for grid in GPU_GRIDS))  # fmt: skip

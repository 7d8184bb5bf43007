"""The ``trained`` input family: q, k and v from a small attention model that learned associative recall.

The model is the tutorial's layer (`variants.layer.SelfAttention`, one head, exact attention) between an
embedding and an output head. Its task: a sequence of (key, value) pairs, each one token (the key's embedding
plus the value's), then query tokens, each asking a key of the sequence; the output at a query must be that
key's value. Solving it takes attention that is sharp (on the one matching pair) and long-range (anywhere in
the sequence), what trained models' retrieval heads do and the Gaussian family never shows.

Trained with Adam from a fixed seed until it solves the task (`TARGET` accuracy on held-out sequences, at most
`MAX_STEPS` steps: seconds on a CPU), once per head dim, and kept as arrays in ``$ATTNBENCH_CACHE`` (default
``~/.cache/attnbench``; NumPy's format, loaded without pickle) so a sweep's workers train it once. `draw`
then feeds it a fresh seeded sequence per batch element and key head, N_kv pairs long, with N_q query tokens
per query head, and returns its q, k, v.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from variants.layer import SelfAttention

KEYS, VALUES = 64, 16  # vocabularies: keys recur rarely at N of a few hundred, often at 8K (attention shared)
PAIRS, QUERIES, BATCH = 48, 16, 64  # training sequences
TARGET, MAX_STEPS, LEARNING_RATE = 0.98, 2000, 3e-3
SEED = 0


@dataclass(frozen=True)
class RecallModel:
    """The trained weights (float32 tensors) and the model's accuracy on held-out sequences."""

    pair_keys: torch.Tensor  # (KEYS, d): a key's embedding in a pair token
    pair_values: torch.Tensor  # (VALUES, d)
    queries: torch.Tensor  # (KEYS, d): a query token's embedding
    w_q: torch.Tensor  # (d, d), applied as x @ w.T (nn.Linear's layout)
    w_k: torch.Tensor
    w_v: torch.Tensor
    accuracy: float
    steps: int


def _sequences(gen: torch.Generator, batch: int, pairs: int, queries: int):
    """(pair keys (B, P), pair values (B, P), query keys (B, Q), answers (B, Q)): distinct keys per sequence."""
    keys = torch.stack([torch.randperm(KEYS, generator=gen)[:pairs] for _ in range(batch)])
    values = torch.randint(VALUES, (batch, pairs), generator=gen)
    asked = torch.randint(pairs, (batch, queries), generator=gen)
    return keys, values, keys.gather(1, asked), values.gather(1, asked)


class _Recall(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.pair_keys, self.pair_values, self.queries = nn.Embedding(KEYS, d), nn.Embedding(VALUES, d), nn.Embedding(KEYS, d)
        self.attention = SelfAttention(d, d, heads=1, variant="naive")
        self.head = nn.Linear(d, VALUES)

    def forward(self, keys, values, asked) -> torch.Tensor:
        x = torch.cat([self.pair_keys(keys) + self.pair_values(values), self.queries(asked)], dim=1)  # (B, P+Q, d)
        return self.head(self.attention(x)[:, keys.shape[1] :])  # (B, Q, VALUES): logits at the query tokens


def train(d: int) -> RecallModel:
    """Train the recall model at head dim ``d`` from `SEED` until it solves the task (or `MAX_STEPS`)."""
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = _Recall(d)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    held_out = _sequences(torch.Generator().manual_seed(SEED + 1), 256, PAIRS, QUERIES)
    accuracy, step = 0.0, 0
    with torch.inference_mode(False), torch.enable_grad():
        while step < MAX_STEPS:
            keys, values, asked, answers = _sequences(gen, BATCH, PAIRS, QUERIES)
            loss = nn.functional.cross_entropy(model(keys, values, asked).flatten(0, 1), answers.flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 50 == 0:
                with torch.no_grad():
                    accuracy = (model(*held_out[:3]).argmax(-1) == held_out[3]).double().mean().item()
                if accuracy >= TARGET:
                    break
    a = model.attention
    weights = [w.detach().clone() for w in (model.pair_keys.weight, model.pair_values.weight, model.queries.weight,
                                            a.w_q.weight, a.w_k.weight, a.w_v.weight)]  # fmt: skip
    return RecallModel(*weights, accuracy=accuracy, steps=step)


def _cache_file(d: int) -> Path:
    root = Path(os.environ.get("ATTNBENCH_CACHE") or Path.home() / ".cache" / "attnbench")
    return root / f"recall-d{d}-seed{SEED}.npz"


@functools.lru_cache(maxsize=4)
def recall_model(d: int) -> RecallModel:
    """The trained model at head dim ``d``: from the cache, or trained now and cached (atomically)."""
    path = _cache_file(d)
    try:
        with np.load(path, allow_pickle=False) as saved:
            tensors = [torch.from_numpy(saved[name]) for name in ("pair_keys", "pair_values", "queries", "w_q", "w_k", "w_v")]
            return RecallModel(*tensors, accuracy=float(saved["accuracy"]), steps=int(saved["steps"]))
    except (OSError, KeyError, ValueError):
        pass
    model = train(d)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
        arrays = {name: getattr(model, name).numpy() for name in ("pair_keys", "pair_values", "queries", "w_q", "w_k", "w_v")}
        np.savez(partial, **arrays, accuracy=model.accuracy, steps=model.steps)
        os.replace(partial, path)
    except OSError:  # an unwritable cache costs a retraining next time, nothing else
        pass
    return model


def draw(n_q: int, n_kv: int, *, batch: int, heads: int, heads_kv: int, d: int, gen: torch.Generator):
    """q (B, H, N_q, d), k and v (B, H_kv, N_kv, d) from the trained model on seeded sequences: per key head a
    sequence of N_kv pairs (keys drawn with replacement once N_kv passes the vocabulary), per query head N_q
    query tokens asking keys of its group's sequence."""
    m = recall_model(d)
    keys = torch.randint(KEYS, (batch, heads_kv, n_kv), generator=gen)
    values = torch.randint(VALUES, (batch, heads_kv, n_kv), generator=gen)
    group = heads // heads_kv
    asked = torch.randint(n_kv, (batch, heads_kv, group * n_q), generator=gen)
    asked_keys = keys.gather(2, asked).view(batch, heads_kv, group, n_q).reshape(batch, heads, n_q)
    x = m.pair_keys[keys] + m.pair_values[values]  # (B, H_kv, N_kv, d)
    return m.queries[asked_keys] @ m.w_q.T, x @ m.w_k.T, x @ m.w_v.T

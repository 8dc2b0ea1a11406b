"""Entropy proxies of a domain from its token ids (numpy; no tokenizer, nothing downloaded).

BiMix (Ge et al. 2024) sets mixture proportions without training from cheap entropy measures of
each domain's token stream. For a sequence (or several documents) of token ids, in nats:

- ``unigram_entropy``:      H(X)       = -sum_x p(x) log p(x)
- ``bigram_joint_entropy``: H(X1, X2)  over adjacent pairs (pairs never cross document boundaries)
- ``conditional_entropy``:  H(X2 | X1) = H(X1, X2) - H(X1), with H(X1) the entropy of the pairs' first tokens

The rule from entropies to proportions (:func:`proportions_from_entropy`) is a softmax:
``r_i = exp(H_i / T) / sum_j exp(H_j / T)``, temperature T = 1 by default. A domain with more
uncertainty per token (more to learn) gets more of the mixture; T > 1 flattens the mixture towards
uniform, T < 1 sharpens it. The BiMix release's proxy mixtures are consistent with T = 1 in nats:
the log ratio of its largest to smallest share is about 1.8 times larger for the joint-entropy
mixture than for the unigram one on the Pile (5.0 vs 2.8), as H(X1, X2) is about twice H(X).
Plug-in (maximum-likelihood) estimates are biased low on short samples; the bias is about
(K - 1) / (2 n) nats for K observed symbols in n tokens (Miller-Madow), added with ``miller_madow=True``.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

Tokens = Sequence[int] | np.ndarray | Iterable[Sequence[int]]


def _documents(tokens: Tokens) -> list[np.ndarray]:
    """One array of non-negative integer ids per document (a flat sequence is one document)."""
    if isinstance(tokens, np.ndarray) and tokens.ndim == 1:
        docs = [tokens]
    else:
        items = list(tokens)
        if items and np.ndim(items[0]) == 0:
            docs = [np.asarray(items)]
        else:
            docs = [np.asarray(d) for d in items]
    out = []
    for d in docs:
        if d.size and (not np.issubdtype(d.dtype, np.integer) or d.min() < 0):
            raise ValueError("token ids must be non-negative integers")
        out.append(d.astype(np.int64, copy=False))
    if sum(d.size for d in out) == 0:
        raise ValueError("no tokens: entropy needs at least one token")
    return out


def _entropy_of_counts(counts: np.ndarray, miller_madow: bool) -> float:
    counts = counts[counts > 0].astype(float)
    n = counts.sum()
    p = counts / n
    h = float(-(p * np.log(p)).sum())
    if miller_madow:
        h += (len(counts) - 1) / (2 * n)
    return h


def unigram_entropy(tokens: Tokens, *, miller_madow: bool = False) -> float:
    """Shannon entropy of the token distribution, in nats."""
    ids = np.concatenate(_documents(tokens))
    return _entropy_of_counts(np.unique(ids, return_counts=True)[1], miller_madow)


def _pairs(tokens: Tokens) -> tuple[np.ndarray, np.ndarray]:
    docs = [d for d in _documents(tokens) if d.size >= 2]
    if not docs:
        raise ValueError("bigram entropies need a document of at least two tokens")
    first = np.concatenate([d[:-1] for d in docs])
    second = np.concatenate([d[1:] for d in docs])
    return first, second


def bigram_joint_entropy(tokens: Tokens, *, miller_madow: bool = False) -> float:
    """Entropy of adjacent token pairs H(X1, X2), in nats."""
    first, second = _pairs(tokens)
    _, counts = np.unique(np.stack([first, second]), axis=1, return_counts=True)
    return _entropy_of_counts(counts, miller_madow)


def conditional_entropy(tokens: Tokens, *, miller_madow: bool = False) -> float:
    """H(X2 | X1) = H(X1, X2) - H(X1) over adjacent pairs, in nats."""
    first, _ = _pairs(tokens)
    h_first = _entropy_of_counts(np.unique(first, return_counts=True)[1], miller_madow)
    return bigram_joint_entropy(tokens, miller_madow=miller_madow) - h_first


PROXIES = {"SE": unigram_entropy, "JE": bigram_joint_entropy, "CE": conditional_entropy}


def domain_entropies(domains: Mapping[str, Tokens], *, miller_madow: bool = False) -> pd.DataFrame:
    """SE, JE and CE of each domain's tokens: one row per domain."""
    rows = {name: {k: f(toks, miller_madow=miller_madow) for k, f in PROXIES.items()} for name, toks in domains.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("domain")


def proportions_from_entropy(entropy: Mapping[str, float] | pd.Series, temperature: float = 1.0) -> pd.Series:
    """Mixture proportions r_i = softmax(H_i / T): more uncertain domains get more of the mixture."""
    h = pd.Series(entropy, dtype=float)
    if not np.isfinite(h).all():
        raise ValueError("entropies must be finite")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    z = h / temperature
    w = np.exp(z - z.max())
    return (w / w.sum()).rename("share")

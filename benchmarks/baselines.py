"""Baselines every matching table shows (../shared/BENCHMARKS.md): ``random``, ``linear`` and ``clip``.

All three follow the API the harness expects of ``scmatch.model.MatchModel``::

    model = Baseline(**settings).fit(X1_train, X2_train, random_state=seed)
    P = model.predict_proba(X1_test, X2_test, top_k=1000)  # CSR, rows sum to 1, <= top_k non-zeros per row

``linear`` and ``clip`` choose their softmax temperature on a held-out 20% of the reference pairs (grid search
minimising the negative log-likelihood of the true partner among the held-out cells); the query is never seen
while fitting. Note that the held-out slice has fewer candidates per row than the query, so the temperature is
calibrated for a smaller candidate set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

TAU_GRID = np.logspace(-3, 0.5, 36)


def _unit(A: np.ndarray) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    return A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)


def _cosine(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return _unit(A) @ _unit(B).T


def choose_temperature(S: np.ndarray, grid: np.ndarray = TAU_GRID) -> tuple[float, float]:
    """Temperature on ``grid`` minimising the mean NLL of the diagonal (true partner) under a row softmax."""
    S = np.asarray(S, dtype=np.float64)
    diag = np.diag(S)
    nll = [float(np.mean(logsumexp(S / t, axis=1) - diag / t)) for t in grid]
    best = int(np.argmin(nll))
    return float(grid[best]), nll[best]


def softmax_topk(A: np.ndarray, B: np.ndarray, tau: float, top_k: int = 1000, chunk: int = 2048) -> sp.csr_matrix:
    """Row softmax of ``cosine(A, B) / tau`` restricted to each row's ``top_k`` largest entries (renormalised).

    The cosine block is computed ``chunk`` rows at a time, so memory stays O(chunk x n2 + n1 x top_k).
    """
    A, B = _unit(A), _unit(B)
    n1, n2 = A.shape[0], B.shape[0]
    k = min(int(top_k), n2)
    chunk = max(1, min(chunk, 8_000_000 // max(n2, 1)))  # at most ~64 MB per float64 block
    indices = np.empty((n1, k), dtype=np.int64)
    data = np.empty((n1, k), dtype=np.float64)
    for start in range(0, n1, chunk):
        block = (A[start : start + chunk] @ B.T) / tau
        idx = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n2 else np.tile(np.arange(n2), (len(block), 1))
        vals = np.take_along_axis(block, idx, axis=1)
        vals = np.exp(vals - vals.max(axis=1, keepdims=True))
        data[start : start + chunk] = vals / vals.sum(axis=1, keepdims=True)
        indices[start : start + chunk] = idx
    P = sp.csr_matrix((data.ravel(), indices.ravel(), np.arange(0, n1 * k + 1, k)), shape=(n1, n2))
    P.sort_indices()
    return P


def _holdout(n: int, frac: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([random_state, 1]).permutation(n)
    n_hold = max(2, round(frac * n))
    return order[n_hold:], order[:n_hold]


class RandomBaseline:
    """Uniform rows: each row spreads its mass evenly over ``min(n2, top_k)`` random columns.

    For ``n2 <= top_k`` this is the dense uniform matrix ``1/n2``; above the challenge's 1000 non-zeros per row it
    is uniform over a random subset, which has the same expected match score ``1/n2``.
    """

    def __init__(self) -> None:
        self.info_: dict[str, Any] = {}

    def fit(self, X1: np.ndarray, X2: np.ndarray, *, random_state: int = 0) -> RandomBaseline:
        self.random_state = random_state
        return self

    def predict_proba(self, Y1: np.ndarray, Y2: np.ndarray, *, top_k: int = 1000) -> sp.csr_matrix:
        n1, n2 = len(Y1), len(Y2)
        k = min(int(top_k), n2)
        if k == n2:
            idx = np.tile(np.arange(n2), n1)
        else:
            rng = np.random.default_rng([self.random_state, 2])
            idx = np.concatenate([np.sort(rng.choice(n2, k, replace=False)) for _ in range(n1)])
        return sp.csr_matrix((np.full(n1 * k, 1.0 / k), idx, np.arange(0, n1 * k + 1, k)), shape=(n1, n2))


class LinearBaseline:
    """Ridge regression mod1 -> mod2 (alpha by leave-one-out CV on the reference), cosine similarity, softmax."""

    def __init__(self, *, alphas: tuple[float, ...] = tuple(np.logspace(-2, 5, 15)), holdout: float = 0.2) -> None:
        self.alphas = alphas
        self.holdout = holdout
        self.info_: dict[str, Any] = {}

    def _ridge(self, X1: np.ndarray, X2: np.ndarray):
        from sklearn.linear_model import RidgeCV

        return RidgeCV(alphas=self.alphas).fit(X1, X2)

    def fit(self, X1: np.ndarray, X2: np.ndarray, *, random_state: int = 0) -> LinearBaseline:
        fit_idx, hold = _holdout(len(X1), self.holdout, random_state)
        ridge = self._ridge(X1[fit_idx], X2[fit_idx])
        self.tau_, nll = choose_temperature(_cosine(ridge.predict(X1[hold]), X2[hold]))
        self.ridge_ = self._ridge(X1, X2)
        self.info_ = {"ridge_alpha": float(self.ridge_.alpha_), "tau": self.tau_, "holdout_nll": nll}
        return self

    def predict_proba(self, Y1: np.ndarray, Y2: np.ndarray, *, top_k: int = 1000) -> sp.csr_matrix:
        return softmax_topk(self.ridge_.predict(Y1), Y2, self.tau_, top_k)


class ClipBaseline:
    """Two-tower MLP trained with symmetric InfoNCE (learnable temperature), then a calibrated row softmax.

    The number of steps and the softmax temperature are chosen on a held-out 20% of the reference (lowest NLL of
    the true partner, checked every ``eval_every`` steps, stopping after ``patience`` checks without improvement);
    the towers are then retrained on the whole reference for that many steps. Inputs are centred with the
    reference mean and divided by one scale per modality (the mean feature sd). The defaults (heavy dropout and
    weight decay: references have a few hundred cells) were picked by that held-out NLL, never by query scores.
    """

    def __init__(
        self,
        *,
        hidden: int = 256,
        n_out: int = 64,
        dropout: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        batch_size: int = 256,
        max_steps: int = 800,
        eval_every: int = 25,
        patience: int = 8,
        init_temperature: float = 0.05,
        holdout: float = 0.2,
    ) -> None:
        self.hidden, self.n_out, self.dropout = hidden, n_out, dropout
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.max_steps, self.eval_every, self.patience = max_steps, eval_every, patience
        self.init_temperature, self.holdout = init_temperature, holdout
        self.info_: dict[str, Any] = {}

    def _tower(self, d_in: int):
        import torch.nn as nn

        return nn.Sequential(
            nn.Linear(d_in, self.hidden),
            nn.LayerNorm(self.hidden),
            nn.GELU(),
            nn.Dropout(self.dropout),
            nn.Linear(self.hidden, self.n_out),
        )

    def _embed(self, towers, Y1: np.ndarray, Y2: np.ndarray) -> np.ndarray:
        return _cosine(*self._towers_out(towers, Y1, Y2))

    def _towers_out(self, towers, Y1: np.ndarray, Y2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        f1, f2, _ = towers
        f1.eval(), f2.eval()
        with torch.no_grad():
            z1 = f1(torch.as_tensor((Y1 - self.mu1_) / self.sd1_, dtype=torch.float32))
            z2 = f2(torch.as_tensor((Y2 - self.mu2_) / self.sd2_, dtype=torch.float32))
        return z1.numpy().astype(np.float64), z2.numpy().astype(np.float64)

    def _train(self, X1, X2, seed: int, n_steps: int, val=None):
        """Train towers for ``n_steps``; with ``val=(V1, V2)`` return the best (nll, step, tau) seen."""
        import torch
        import torch.nn.functional as F

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            f1, f2 = self._tower(X1.shape[1]), self._tower(X2.shape[1])
            log_scale = torch.nn.Parameter(torch.tensor(float(np.log(1.0 / self.init_temperature))))
            params = [*f1.parameters(), *f2.parameters(), log_scale]
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
            T1 = torch.as_tensor((X1 - self.mu1_) / self.sd1_, dtype=torch.float32)
            T2 = torch.as_tensor((X2 - self.mu2_) / self.sd2_, dtype=torch.float32)
            n, bs = len(T1), min(self.batch_size, len(T1))
            best = (np.inf, 0, 1.0)
            for step in range(1, n_steps + 1):
                f1.train(), f2.train()
                idx = torch.randperm(n, generator=gen)[:bs]
                z1 = F.normalize(f1(T1[idx]), dim=1)
                z2 = F.normalize(f2(T2[idx]), dim=1)
                logits = log_scale.clamp(max=np.log(100.0)).exp() * z1 @ z2.T
                target = torch.arange(bs)
                loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
                opt.zero_grad()
                loss.backward()
                opt.step()
                if val is not None and (step % self.eval_every == 0 or step == n_steps):
                    tau, nll = choose_temperature(self._embed((f1, f2, log_scale), *val))
                    if nll < best[0]:
                        best = (nll, step, tau)
                    elif step - best[1] >= self.patience * self.eval_every:
                        break
        return (f1, f2, log_scale), best

    def fit(self, X1: np.ndarray, X2: np.ndarray, *, random_state: int = 0) -> ClipBaseline:
        X1, X2 = np.asarray(X1, dtype=np.float32), np.asarray(X2, dtype=np.float32)
        # centre each feature, one scale per modality (per-feature z-scores would inflate the noisy trailing PCs)
        self.mu1_, self.sd1_ = X1.mean(0), X1.std(0).mean() + 1e-6
        self.mu2_, self.sd2_ = X2.mean(0), X2.std(0).mean() + 1e-6
        fit_idx, hold = _holdout(len(X1), self.holdout, random_state)
        _, (nll, steps, tau) = self._train(X1[fit_idx], X2[fit_idx], random_state, self.max_steps, (X1[hold], X2[hold]))
        self.tau_, self.n_steps_ = tau, steps
        self.towers_, _ = self._train(X1, X2, random_state, steps)
        self.info_ = {"tau": tau, "n_steps": steps, "holdout_nll": nll}
        return self

    def predict_proba(self, Y1: np.ndarray, Y2: np.ndarray, *, top_k: int = 1000) -> sp.csr_matrix:
        Y1, Y2 = np.asarray(Y1, dtype=np.float32), np.asarray(Y2, dtype=np.float32)
        return softmax_topk(*self._towers_out(self.towers_, Y1, Y2), self.tau_, top_k)

"""Two-dimensional coordinates of a joint embedding: UMAP through scanpy, or the first two principal components."""

from __future__ import annotations

import numpy as np

BASES = ("umap", "pca")


def joint_coordinates(X: np.ndarray, *, basis: str, random_state: int | None) -> tuple[np.ndarray, tuple[str, str]]:
    """Coordinates (n x 2) of the rows of ``X`` and the two axis labels.

    ``"pca"``: the first two principal components, signs fixed so that each component's largest loading is
    positive (the same input gives the same picture). ``"umap"``: :func:`scanpy.tl.umap` on a 15-nearest-neighbour
    cosine graph (:func:`scanpy.pp.neighbors`), computed on a throwaway AnnData.
    """
    if basis not in BASES:
        raise ValueError(f"`basis` must be one of {BASES}, got {basis!r}.")
    X = np.asarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError("The joint embedding holds NaN or infinite values; rerun scmatch.tl.match_modalities.")
    if basis == "pca":
        centered = X - X.mean(axis=0)
        _, s, vt = np.linalg.svd(centered, full_matrices=False)
        vt = vt[:2] * np.sign(vt[:2, np.argmax(np.abs(vt[:2]), axis=1)].diagonal())[:, None]
        share = s[:2] ** 2 / max(float(np.sum(s**2)), 1e-300)
        return centered @ vt.T, (f"PC1 ({share[0]:.0%} of variance)", f"PC2 ({share[1]:.0%} of variance)")
    import scanpy as sc
    from anndata import AnnData

    adata = AnnData(X.astype(np.float32))
    seed = 0 if random_state is None else int(random_state)
    n_neighbors = int(min(15, X.shape[0] - 1))
    sc.pp.neighbors(adata, use_rep="X", n_neighbors=n_neighbors, metric="cosine", random_state=seed)
    sc.tl.umap(adata, random_state=seed)
    return np.asarray(adata.obsm["X_umap"]), ("UMAP1", "UMAP2")

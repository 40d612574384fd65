"""Prototype (issue 26, build item 2): the ATAC encoder reads the peaks' TF-IDF through a sparse first layer.

Not part of the package. The default network reads each ATAC cell's LSI components (``recipe_atac``'s
``X_lsi``). Here the first layer of the ATAC encoder also reads the TF-IDF of every peak the recipe kept, through
a learned ``peaks x hidden`` matrix applied with ``torch.sparse.mm`` (a cell has about 100 non-zero peaks, so a
minibatch touches a few thousand rows of it and memory stays that of the matrix). The matrix starts at zero, so
training starts from the default network and learns peak-level corrections to what the LSI gives it; ``scale``
multiplies its contribution (a smaller scale is a smaller step for those weights under Adam's normalised
updates). Everything else is the default :class:`~scmatch.model.MatchModel` and ``run_atac.py``'s protocol: the
recipes on reference + query cells together, fit on the reference, Sinkhorn over the pooled query.

How it plugs in: the ATAC input is ``[X_lsi, 1000 * cell index]``; the patched encoder standardises the LSI
columns as usual, reads the index column back (exactly, with the training noise far below the 1000 spacing) and
adds ``scale * tfidf[index] @ W`` to the first layer's pre-activation. Variants: ``lsi`` (the default network,
the LSI components alone, through the same code) and ``sparse`` / ``sparse01`` (scale 1 and 0.1)::

    python benchmarks/prototypes/sparse_layer.py --datasets snare2 snare2_rev --variants lsi sparse sparse01 \
        --seeds 0 1 2 --out benchmarks/results/sparse_layer
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import run_atac  # noqa: E402
from _provenance import git_state  # noqa: E402

#: the sparse layer's scale per variant (None: no sparse layer)
VARIANTS = {"lsi": None, "sparse": 1.0, "sparse01": 0.1}
INDEX_SPACING = 1000.0
_STATE: dict = {"tfidf": None, "scale": None}


def _install() -> None:
    """Patch the network: a sparse peak layer on the ATAC encoder, the index column left unstandardised."""
    import torch
    from torch import nn

    from scmatch.model.nn import _modules

    original_init = _modules.CrossAttentionMatcher.__init__
    original_standardization = _modules.CrossAttentionMatcher.set_standardization

    def __init__(self, n_features1, n_features2, **kwargs):
        original_init(self, n_features1, n_features2, **kwargs)
        if _STATE["scale"] is not None:
            hidden = self.encoder2.mlp[0].out_features
            self.peak_weight = nn.Parameter(torch.zeros(_STATE["tfidf"].shape[1], hidden))

    def set_standardization(self, modality, shift, scale):
        if modality == 2 and _STATE["scale"] is not None:  # the index column passes through as it is
            shift, scale = shift.clone(), scale.clone()
            shift[-1], scale[-1] = 0.0, 1.0
        original_standardization(self, modality, shift, scale)

    def tokens(self, x, modality):
        if modality == 1 or _STATE["scale"] is None:
            return original_tokens(self, x, modality)
        index = torch.round(x[:, -1] / INDEX_SPACING).long().cpu().numpy()
        rows = _STATE["tfidf"][index].tocoo()
        batch = torch.sparse_coo_tensor(
            np.vstack([rows.row, rows.col]), rows.data.astype(np.float32), size=rows.shape, device=x.device
        )
        extra = _STATE["scale"] * torch.sparse.mm(batch, self.peak_weight)
        z = (x - self.shift2) / self.scale2
        z = torch.cat([z[:, :-1], torch.zeros_like(z[:, -1:])], dim=1)  # the index does not enter the LSI layer
        enc = self.encoder2
        pre = enc.mlp[0](z) + extra
        if self.training:
            hidden = _modules._dropout(enc.mlp[1](pre), enc.mlp[2].p, self.generator)
            tok = enc.norm(enc.mlp[3](hidden).view(-1, enc.n_tokens, enc.d_model) + enc.position)
            for layer in enc.attention.layers:
                tok = _modules._encoder_layer(layer, tok, self.generator)
            return tok
        tok = enc.mlp[3](enc.mlp[2](enc.mlp[1](pre))).view(-1, enc.n_tokens, enc.d_model) + enc.position
        return enc.attention(enc.norm(tok))

    original_tokens = _modules.CrossAttentionMatcher.tokens
    _modules.CrossAttentionMatcher.__init__ = __init__
    _modules.CrossAttentionMatcher.set_standardization = set_standardization
    _modules.CrossAttentionMatcher.tokens = tokens


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["snare2"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sim-cells", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE.parent / "results" / "sparse_layer")
    args = p.parse_args(argv)

    import scipy.sparse as sp
    import torch
    from threadpoolctl import threadpool_limits

    import scmatch.pp

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    _install()
    command = "python benchmarks/prototypes/sparse_layer.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in args.datasets:
        rna, atac, is_train, is_test, labels = run_atac._load(name, args.sim_cells)
        r = rna.copy()
        scmatch.pp.recipe_rna(r, n_top_genes=min(2000, rna.n_vars))
        X1 = np.asarray(r.obsm["X_pca"], dtype=np.float32)
        a = atac.copy()
        scmatch.pp.recipe_atac(a)
        used = a.var["highly_accessible"].to_numpy()
        tfidf = sp.csr_matrix(a.X[:, np.flatnonzero(used)], dtype=np.float32)
        lsi = np.asarray(a.obsm["X_lsi"], dtype=np.float32)
        index = (INDEX_SPACING * np.arange(a.n_obs, dtype=np.float32))[:, None]
        for variant in args.variants:
            _STATE["tfidf"], _STATE["scale"] = tfidf, VARIANTS[variant]
            X2 = lsi if VARIANTS[variant] is None else np.hstack([lsi, index])
            for seed in args.seeds:
                record = {
                    "dataset": name,
                    "method": f"scmatch_{variant}",
                    "variant": variant,
                    "seed": seed,
                    "sparse_scale": VARIANTS[variant],
                    "n_peaks_layer": int(tfidf.shape[1]),
                    "n_train": int(is_train.sum()),
                    "n_test": int(is_test.sum()),
                }
                record.update(run_atac._match(X1, X2, labels, is_train, is_test, seed))
                record.update(git_state(), command=command, python=platform.python_version(), threads=args.threads)
                record["n_cores"] = os.cpu_count()
                record["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                out = args.out / f"{name}__{variant}__seed{seed}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(record, indent=1) + "\n")
                print(
                    f"{name:>12} {variant:>9} seed {seed}: match {record['match_score']:.4f} "
                    f"ct {record['celltype_mass']:.3f} foscttm {record['foscttm']:.3f} "
                    f"knn_match {record['knn15_match_atac']:.3f} fit {record['fit_seconds']:.0f}s",
                    flush=True,
                )


if __name__ == "__main__":
    main()

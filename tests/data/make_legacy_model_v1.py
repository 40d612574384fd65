"""How tests/data/legacy_model_v1 was made, with scmatch at commit 1734ccf (before model manifests).

Kept for the record: run from the repository root with that version, it writes the folder and the predictions
the loading test compares with. The current code saves manifest folders instead.
"""

import sys

import numpy as np
import torch

sys.path.insert(0, "tests")

from reliability.cases import N_CELLS, N_REF, _count_mudata, _preprocessed

import scmatch as scm
from scmatch.model import MatchModel

if __name__ == "__main__":
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ref = _preprocessed(_count_mudata(slice(0, N_REF)))
    model = MatchModel(epochs=2, n_tokens=2, d_model=16, d_embed=16, batch_size=64, progress_bar=False, device="cpu")
    scm.tl.match_modalities(ref, mod1="rna", mod2="atac", model=model)
    model.save("tests/data/legacy_model_v1")
    query = _count_mudata(slice(N_REF, N_CELLS))
    scm.pp.recipe_rna(query, mod="rna", reference=model)
    scm.pp.recipe_atac(query, mod="atac", reference=model)
    P = model.predict_proba(query["rna"].obsm["X_pca"], query["atac"].obsm["X_lsi"])
    np.save("tests/data/legacy_model_v1_expected.npy", P.toarray())

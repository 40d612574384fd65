"""Self-supervised pre-training on unpaired cells (MatchModel.fit(self_supervision=...), tl.match_modalities)."""

import mudata as md
import numpy as np
import pandas as pd
import pytest
import torch

import scmatch as scm
from scmatch.model import MatchModel, SelfSupervision, TrainingPlan

QUICK = TrainingPlan(max_epochs=3, progress_bar=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask": 1.0}, "`mask` must be in"),
        ({"batch_size": 1}, "`batch_size` must be at least 2"),
        ({"steps": 0}, "steps"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_settings_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelfSupervision(**kwargs)


def test_fit_pretrains_on_paired_and_unpaired_cells(toy_pairs):
    x1, x2 = toy_pairs
    ssl = SelfSupervision(steps=10)
    kw = {"plan": QUICK, "random_state": 0}
    plain = MatchModel(n_models=2).fit(x1[:300], x2[:300], **kw)
    pre = MatchModel(n_models=2).fit(x1[:300], x2[:300], unpaired=(x1[300:], None), self_supervision=ssl, **kw)
    again = MatchModel(n_models=2).fit(x1[:300], x2[:300], unpaired=(x1[300:], None), self_supervision=ssl, **kw)
    history = pre.history_
    assert history["self_supervision_n_cells"] == [len(x1), 300] and history["self_supervision_steps"] == 10
    assert len(history["self_supervision_final_loss"]) == 4 and "self_supervision_steps" not in plain.history_
    weights = [m.state_dict()["members.0.encoder1.mlp.0.weight"] for m in (plain.module_, pre.module_, again.module_)]
    assert not torch.equal(weights[0], weights[1]) and torch.equal(weights[1], weights[2])  # deterministic per seed
    with pytest.raises(ValueError, match="used only for self-supervised pre-training"):
        MatchModel().fit(x1[:300], x2[:300], unpaired=(x1[300:], None), **kw)
    with pytest.raises(ValueError, match="have 3 features and the pairs"):
        MatchModel().fit(x1[:300], x2[:300], unpaired=(x1[300:, :3], None), self_supervision=ssl, **kw)
    with pytest.raises(TypeError, match=r"must be a scmatch\.model\.SelfSupervision"):
        MatchModel().fit(x1[:300], x2[:300], self_supervision={"steps": 10}, **kw)


@pytest.mark.slow
def test_mapping_onto_a_reference_totalvi(data_dir):
    """totalVI, batch1 -> batch2, the query projected onto the reference's recipes: pre-training on both lifts it.

    Through tl.match_modalities with its defaults (the feature links included), one network to keep it short.
    """
    mdata = md.read_h5mu(data_dir / "totalvi_sln_340.h5mu")
    batch = mdata["rna"].obs["batch"].astype(str).to_numpy()
    ref, query = mdata[batch == "batch1"].copy(), mdata[batch == "batch2"].copy()
    scm.pp.recipe_rna(ref, mod="rna")
    scm.pp.recipe_protein(ref, mod="adt")
    scm.pp.recipe_rna(query, mod="rna", reference=ref)
    scm.pp.recipe_protein(query, mod="adt", reference=ref)
    scores = {}
    for ssl in (None, True):
        model = MatchModel(n_models=1)
        model.plan = TrainingPlan(progress_bar=False)
        out = scm.tl.match_modalities(
            query, mod1="rna", mod2="adt", reference=ref, model=model, self_supervision=ssl, copy=True
        )
        scores[ssl] = scm.tl.evaluate_match(out, labels_key="cell_type")["match_score"]
    # measured: 0.295 -> 0.431 with one network (benchmarks/README.md, Self-supervision: 0.386 -> 0.560 with the
    # ensemble and without the links, 3 seeds)
    assert scores[True] > 1.25 * scores[None]


def test_match_modalities_refusals_leave_the_data_untouched(toy_pairs):
    x1, x2 = toy_pairs
    names = [f"c{i}" for i in range(len(x1))]
    obs = pd.DataFrame({"is_reference": np.arange(len(x1)) < 400}, index=names)
    toy = md.MuData({"rna": md.AnnData(obs=obs.copy(), obsm={"X_pca": x1}),
                     "atac": md.AnnData(obs=obs.copy(), obsm={"X_lsi": x2})})  # fmt: skip
    fitted = MatchModel(n_models=1).fit(x1[:400], x2[:400], plan=QUICK)
    with pytest.raises(ValueError, match="this model is fitted already"):
        scm.tl.match_modalities(toy, reference="is_reference", model=fitted, self_supervision=True)
    with pytest.raises(TypeError, match="`self_supervision` must be True, None or"):
        scm.tl.match_modalities(toy, reference="is_reference", self_supervision="yes")
    assert not toy.uns and not toy.obsp
    model = MatchModel(n_models=1)
    model.plan = QUICK
    scm.tl.match_modalities(toy, reference="is_reference", model=model, self_supervision=SelfSupervision(steps=5))
    assert toy.uns["match"]["params"]["self_supervision"]
    assert list(toy.uns["match"]["history"]["self_supervision_n_cells"]) == [len(x1), len(x1)]

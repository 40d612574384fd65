"""Feature links in tl.match_modalities: found and checked before training, weighed on the held-out pairs after.

``links="auto"`` links each protein to the gene coding it (:func:`scmatch.links.protein_gene_links`) when one
modality holds proteins and the other genes, and each gene to the peaks near it
(:func:`scmatch.links.peak_gene_links`) when one modality holds peaks and the other genes with coordinates; a
DataFrame gives the links by hand (columns ``protein`` and ``genes``, or ``gene`` and ``peak``). The linked
values come from the counts of both modalities (``.layers['counts']`` or ``.X``). The prior's weight is chosen on
the pairs the model's networks held out (:func:`scmatch.links.choose_weight`), so it needs a model trained in this
call; where the weight is 0 the match is the network's alone. A weight above 0 is kept with the model
(``model.links_``, saved by :meth:`~scmatch.model.MatchModel.save`): a fitted or loaded model that carries links
matches a new experiment with them under ``links="auto"``, at the weight its fit chose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from mudata import MuData

from .._utils import logger
from ..links import PairPrior, choose_weight, linked_values, profiles, protein_gene_links
from ..links._peaks import is_peaks, peak_gene_links, peak_linked_values
from ..model._held_out import held_out_pool

#: fewest links with which ``links="auto"`` uses them (fewer carry too little to judge on held-out pairs)
MIN_LINKS = 3


@dataclass
class LinkPlan:
    """What was found before training: the links and each cell's linked values, or why there are none."""

    table: pd.DataFrame | None
    ref_values: tuple[np.ndarray, np.ndarray] | None = None  # one row per reference pair
    query_values: tuple[np.ndarray, np.ndarray] | None = None  # one row per query cell of each modality
    ref_batch: np.ndarray | None = None
    reason: str | None = None
    swapped: bool = False  # mod1 holds the proteins (or the peaks) and mod2 the genes
    weight: float | None = None  # the weight a fitted model carries (None: chosen after this call's fit)
    kind: str = "protein"  # "protein": protein-gene links (protein, genes); "peak": peak-gene links (gene, peak)

    def report(self) -> dict:
        if self.table is None:
            return {"used": False, "reason": self.reason}
        if self.kind == "peak":
            report = {
                "used": False,
                "kind": "peak",
                "n_links": len(self.table),
                "n_genes": int(self.table["gene"].nunique()),
                "n_peaks": int(self.table["peak"].nunique()),
            }
            return report if self.weight is None else {**report, "source": "model", "weight": self.weight}
        report = {
            "used": False,
            "n_links": len(self.table),
            "proteins": list(self.table["protein"]),
            "genes": list(self.table["genes"]),
        }
        return report if self.weight is None else {**report, "source": "model", "weight": self.weight}


def plan_links(links, mdata: MuData, inputs, *, mods: tuple[str, str], batch_key: str | None, model) -> LinkPlan:
    """Find the links and the linked values, or say why there are none.

    An explicit request that cannot be met is refused here, before any training.
    """
    if links is None or links is False:
        return LinkPlan(None, reason="links=None")
    explicit = not (isinstance(links, str) and links == "auto")
    if explicit and not isinstance(links, pd.DataFrame):
        raise TypeError(
            "`links` must be 'auto', None or a DataFrame with columns 'protein' and 'genes' (or 'gene' and 'peak'), "
            f"got {links!r}."
        )
    if model.module_ is not None and getattr(model, "links_", None) is not None and not explicit:
        return _carried(model.links_, mdata, inputs, mods=mods)
    why = None
    if model.module_ is not None and getattr(model, "links_", None) is not None:
        why = (
            "the model was fitted before this call with links of its own, at the weight its fit chose; pass "
            "`links='auto'` to match with those"
        )
    elif model.module_ is not None:
        why = (
            "the model was fitted before this call and carries no links (its fit chose none, or ran without "
            "them): the links' weight is chosen on the held-out pairs of a fit"
        )
    elif model.plan.validation_fraction == 0:
        why = "the model's plan holds no pairs out (validation_fraction=0), and the links' weight is chosen on them"
    if why is not None:
        if explicit:
            raise ValueError(f"`links` cannot be used: {why}. Train the model here with held-out pairs, or pass "
                             "`links=None`.")  # fmt: skip
        return LinkPlan(None, reason=why)
    ad1, ad2 = (mdata[m] for m in mods)
    ref1, ref2 = inputs.ref_adatas
    if explicit:
        table, swapped, kind = _table(links, ad1, ad2, mods)
    else:
        table, swapped, kind, why = _auto_table(ad1, ad2)
        if table is None:
            return LinkPlan(None, reason=why)
    n_linked = table["gene"].nunique() if kind == "peak" else len(table)
    if n_linked < (1 if explicit else MIN_LINKS):
        what = "genes linked to peaks" if kind == "peak" else "protein-gene links"
        return LinkPlan(None, reason=f"{n_linked} {what} found (at least {MIN_LINKS} are needed)")
    (i1, i2), (q1, q2) = inputs.ref_pairs, inputs.query_masks
    try:
        r1, r2 = _values(ref1, ref2, table, swapped, mods, "reference", kind)
        v1, v2 = (r1, r2) if ref1 is ad1 and ref2 is ad2 else _values(ad1, ad2, table, swapped, mods, "mdata", kind)
    except ValueError as err:  # counts not at hand
        if explicit:
            raise
        return LinkPlan(None, reason=f"no counts for the linked values ({err})")
    batch = None
    if batch_key is not None and batch_key in ref1.obs:
        batch = ref1.obs[batch_key].astype(str).to_numpy()[i1]
    if kind == "peak":
        logger.info("feature links: %d genes linked to %d peaks", n_linked, table["peak"].nunique())
    else:
        logger.info("feature links: %d proteins linked to their genes", len(table))
    return LinkPlan(table, (r1[i1], r2[i2]), (v1[q1], v2[q2]), batch, swapped=swapped, kind=kind)


def _carried(links: dict, mdata: MuData, inputs, *, mods: tuple[str, str]) -> LinkPlan:
    """The links a fitted model carries, at its weight, on the query's counts; none if the query lacks them."""
    kind = links.get("kind", "protein")
    ad1, ad2 = (mdata[m] for m in mods)
    if kind == "peak":
        table = pd.DataFrame({"gene": links["gene"], "peak": links["peak"]})
        swapped = links["peaks_in"] == 1
        gene_ad, other_ad = (ad2, ad1) if swapped else (ad1, ad2)
        genes, others = set(table["gene"]), set(table["peak"])
    else:
        table = pd.DataFrame({"protein": links["protein"], "genes": links["genes"]})
        swapped = links["proteins_in"] == 1
        gene_ad, other_ad = (ad2, ad1) if swapped else (ad1, ad2)
        genes, others = {g for names in table["genes"] for g in names.split(";")}, set(table["protein"])
    missing = sorted((others - set(other_ad.var_names)) | (genes - set(gene_ad.var_names)))
    if missing:
        return LinkPlan(None, reason=f"the query lacks linked features the model was fitted with (e.g. {missing[:5]})")
    try:
        v1, v2 = _values(ad1, ad2, table, swapped, mods, "mdata", kind)
    except ValueError as err:  # counts not at hand
        return LinkPlan(None, reason=f"no counts for the linked values ({err})")
    (q1, q2) = inputs.query_masks
    logger.info("feature links: the model's %d links, weight %.3g", len(table), links["weight"])
    return LinkPlan(table, query_values=(v1[q1], v2[q2]), swapped=swapped, weight=float(links["weight"]), kind=kind)


def _auto_table(ad1, ad2) -> tuple[pd.DataFrame | None, bool, str, str | None]:
    """Protein-gene links if there are any, else peak-gene links from coordinates, else why there are none."""
    table = protein_gene_links(ad2.var_names, ad1.var_names)
    swapped_table = protein_gene_links(ad1.var_names, ad2.var_names)
    table, swapped = (swapped_table, True) if len(swapped_table) > len(table) else (table, False)
    if len(table) >= MIN_LINKS:
        return table, swapped, "protein", None
    peaks = [is_peaks(ad) for ad in (ad1, ad2)]
    if peaks[0] == peaks[1]:
        return None, False, "protein", f"{len(table)} protein-gene links found (at least {MIN_LINKS} are needed)"
    swapped = peaks[0]
    gene_ad, peak_ad = (ad2, ad1) if swapped else (ad1, ad2)
    try:
        table = peak_gene_links(gene_ad, peak_ad)
    except ValueError as err:  # no coordinates for the genes (or the peaks)
        return None, False, "peak", f"no peak-gene links: {err}"
    return table[["gene", "peak"]], swapped, "peak", None


def _table(links: pd.DataFrame, ad1, ad2, mods) -> tuple[pd.DataFrame, bool, str]:
    """A table given by hand, checked.

    Proteins in one modality and genes (``;``-separated) in the other, or genes in one and peaks in the other.
    """
    if {"gene", "peak"} <= set(links.columns):
        table = links[["gene", "peak"]].astype(str).reset_index(drop=True)
        for swapped, (genes_ad, peak_ad) in ((False, (ad1, ad2)), (True, (ad2, ad1))):
            if set(table["gene"]) <= set(genes_ad.var_names) and set(table["peak"]) <= set(peak_ad.var_names):
                return table, swapped, "peak"
        unknown = sorted(set(table["peak"]) - set(ad1.var_names) - set(ad2.var_names))[:5]
        raise ValueError(
            f"`links` names features that are not in the data (e.g. peaks {unknown}): 'gene' must name features of "
            "one modality and 'peak' of the other. Build the table with scmatch.links.peak_gene_links."
        )
    missing = {"protein", "genes"} - set(links.columns)
    if missing:
        raise ValueError(
            f"`links` lacks the column(s) {sorted(missing)}: it needs 'protein' and 'genes' (protein-gene links) or "
            "'gene' and 'peak' (peak-gene links)."
        )
    table = links[["protein", "genes"]].astype(str).reset_index(drop=True)
    for swapped, (genes_ad, protein_ad) in ((False, (ad1, ad2)), (True, (ad2, ad1))):
        genes = {g for names in table["genes"] for g in names.split(";")}
        if set(table["protein"]) <= set(protein_ad.var_names) and genes <= set(genes_ad.var_names):
            return table, swapped, "protein"
    gene_mod, protein_mod = mods
    unknown = sorted(set(table["protein"]) - set(ad2.var_names))[:5]
    raise ValueError(
        f"`links` names features that are not in the data (e.g. proteins {unknown} are not in "
        f"mdata[{protein_mod!r}].var_names): 'protein' must name features of one modality and 'genes' of the "
        f"other ({gene_mod!r}). Build the table with scmatch.links.protein_gene_links."
    )


def _values(ad1, ad2, table, swapped: bool, mods, what: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Linked values of every cell of both modalities, mod1's first."""
    names = tuple(f"{what}[{m!r}]" for m in mods)
    values = peak_linked_values if kind == "peak" else linked_values
    if swapped:
        v2, v1 = values(ad2, ad1, table, what=names[::-1])
        return v1, v2
    return values(ad1, ad2, table, what=names)


def weigh_links(plan: LinkPlan, model, inputs, *, top_k: int) -> tuple[PairPrior | None, PairPrior | None, dict]:
    """After training: the weight on the held-out pairs, then the query's prior and the held-out pairs' prior."""
    report = plan.report()
    if plan.table is None:
        return None, None, report
    if plan.weight is not None:  # the weight the model's own fit chose
        q1, q2 = plan.query_values
        report["used"] = True
        return (
            PairPrior(profiles(q1, groups=inputs.batch1), profiles(q2, groups=inputs.batch2), plan.weight),
            None,
            report,
        )
    (r1, r2), (q1, q2) = plan.ref_values, plan.query_values
    if getattr(model, "held_out_", None) is None:  # a fit too small to hold pairs out
        report["reason"] = "the fit held no reference pairs out to weigh the links on"
        return None, None, report
    chosen = choose_weight(model, inputs.ref1, inputs.ref2, r1, r2, batch=plan.ref_batch, top_k=top_k)
    report.update(chosen)
    weight = chosen["weight"]
    if weight == 0:
        logger.info("feature links: weight 0 on the held-out pairs; the network matches alone")
        return None, None, report
    report["used"] = True
    logger.info("feature links: weight %.3g (held-out score %.3f -> %.3f)", weight, chosen["score_without"],
                chosen["score_with"])  # fmt: skip
    if plan.kind == "peak":
        model.links_ = {
            "kind": "peak",
            "gene": [str(g) for g in plan.table["gene"]],
            "peak": [str(p) for p in plan.table["peak"]],
            "peaks_in": 1 if plan.swapped else 2,
            "weight": float(weight),
        }
    else:
        model.links_ = {
            "protein": [str(p) for p in plan.table["protein"]],
            "genes": [str(g) for g in plan.table["genes"]],
            "proteins_in": 1 if plan.swapped else 2,
            "weight": float(weight),
        }
    query = PairPrior(profiles(q1, groups=inputs.batch1), profiles(q2, groups=inputs.batch2), weight)
    _, pool = held_out_pool(model, len(r1))
    z1, z2 = np.zeros((len(r1), r1.shape[1]), np.float32), np.zeros((len(r2), r2.shape[1]), np.float32)
    groups = None if plan.ref_batch is None else plan.ref_batch[pool]
    z1[pool], z2[pool] = profiles(r1[pool], groups=groups), profiles(r2[pool], groups=groups)
    return query, PairPrior(z1, z2, weight), report

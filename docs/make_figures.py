"""Render every scmatch.pl plot from a real match on the CITE-seq starter and save the PNGs for the docs.

The match follows BENCHMARKS.md: RNA -> ADT on ``bmmc_cite_starter.h5mu``, reference = batch s1d1 (paired),
query = batch s1d2, matched within batch. Labels (``cell_type``) are used only to draw.

    OMP_NUM_THREADS=1 python docs/make_figures.py                      # train (about 1-3 minutes on 2 cores)
    python docs/make_figures.py --cache /tmp/cite_matched.h5mu         # reuse a match written by a previous run

Writes ``docs/_static/figures/*.png`` (dpi 100) and prints the match's scores.
"""

from __future__ import annotations

import argparse
import io
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mudata as md
from PIL import Image

import scmatch as scm

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "bmmc_cite_starter.h5mu"
OUT = ROOT / "docs" / "_static" / "figures"
DPI = 100


def matched_cite(data: Path, *, epochs: int, cache: Path | None) -> md.MuData:
    """The CITE starter with a match under key "match" (read from ``cache`` when it exists)."""
    if cache is not None and cache.exists():
        print(f"reading the match from {cache}")
        return md.read_h5mu(cache)
    with warnings.catch_warnings(), md.set_options(pull_on_update=False):
        warnings.simplefilter("ignore", category=UserWarning)  # mudata: intersecting var names across modalities
        mdata = md.read_h5mu(data)
    for mod in ("rna", "adt"):
        mdata[mod].obs["is_reference"] = (mdata[mod].obs["batch"] == "s1d1").to_numpy()
    scm.pp.recipe_rna(mdata, mod="rna")
    scm.pp.recipe_protein(mdata, mod="adt")
    model = scm.model.MatchModel()
    model.plan = scm.model.TrainingPlan(max_epochs=epochs, progress_bar=False)
    start = time.perf_counter()
    scm.tl.match_modalities(
        mdata, mod1="rna", mod2="adt", reference="is_reference", batch_key="batch", key_added="match", model=model
    )
    print(f"matched in {time.perf_counter() - start:.0f} s")
    if cache is not None:
        mdata.write(cache)
    return mdata


def save(obj, name: str) -> None:
    """Save as a 256-colour PNG (a third of the size of a full-colour one, same look for plots)."""
    fig = obj if isinstance(obj, plt.Figure) else obj.figure
    path = OUT / f"{name}.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    image = Image.open(buffer).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} KB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="bmmc_cite_starter.h5mu")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--cache", type=Path, default=None, help="h5mu file to reuse or write the match to")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    mdata = matched_cite(args.data, epochs=args.epochs, cache=args.cache)
    scores = scm.tl.evaluate_match(mdata, key="match", labels_key="cell_type")
    print({k: round(float(v), 4) for k, v in scores.items()})

    save(scm.pl.embedding(mdata, color="modality", n_pairs=60, show=False), "embedding_modality")
    save(scm.pl.embedding(mdata, color="cell_type", show=False), "embedding_celltype")
    save(scm.pl.embedding(mdata, color="confidence", cells="query", show=False), "embedding_confidence")
    save(scm.pl.embedding(mdata, color="cell_type", basis="pca", show=False), "embedding_pca")
    save(scm.pl.match_heatmap(mdata, groupby="cell_type", show=False), "heatmap_celltype")
    save(scm.pl.match_heatmap(mdata, groupby="cell_type", level="cell", n_cells=120, show=False), "heatmap_cells")
    save(scm.pl.training_history(mdata, show=False), "training_history")
    save(scm.pl.match_scores(mdata, groupby="cell_type", show=False), "match_scores")


if __name__ == "__main__":
    main()

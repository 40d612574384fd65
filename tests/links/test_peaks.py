"""Peak-gene links: coordinates from var, names or an annotation file; links, gene activity and linked values."""

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import scmatch as scm
from scmatch.links import gene_coordinates, peak_coordinates, peak_gene_links, peak_linked_values, profiles


def _toy() -> tuple[ad.AnnData, ad.AnnData]:
    """Three genes and six peaks at known distances (chr1 unless said)."""
    rng = np.random.default_rng(0)
    rna = ad.AnnData(
        sp.csr_matrix(rng.poisson(2.0, (20, 3)).astype(np.float32)),
        var=pd.DataFrame({"interval": ["chr1:1000-2000", "chr1:50000-50100", "chr2:500-600"]}, index=["A", "B", "C"]),
    )
    peaks = ["chr1:1500-1700", "chr1:2500-2600", "chr1:40000-40500", "chr1:200000-200500", "chr2:100-200", "chrX:1-9"]
    atac = ad.AnnData(sp.csr_matrix(rng.poisson(1.0, (20, 6)).astype(np.float32)), var=pd.DataFrame(index=peaks))
    return rna, atac


def test_links_at_known_distances():
    rna, atac = _toy()
    links = peak_gene_links(rna, atac, distance=10_000)
    got = {(g, p): d for g, p, d in links[["gene", "peak", "distance"]].itertuples(index=False)}
    assert got == {
        ("A", "chr1:1500-1700"): 0,  # inside the gene's interval
        ("A", "chr1:2500-2600"): 500,
        ("B", "chr1:40000-40500"): 9_500,
        ("C", "chr2:100-200"): 300,
    }
    # the default window (100 kb) reaches further: A and B both reach the peak at 40 kb, B the one at 200 kb not
    wide = peak_gene_links(rna, atac)
    assert set(wide.loc[wide["gene"] == "A", "peak"]) == {"chr1:1500-1700", "chr1:2500-2600", "chr1:40000-40500"}
    assert "chr1:200000-200500" not in set(wide["peak"]) and "chrX:1-9" not in set(wide["peak"])
    assert peak_gene_links(rna, atac, distance=0)["peak"].tolist() == ["chr1:1500-1700"]
    with pytest.raises(ValueError, match="distance"):
        peak_gene_links(rna, atac, distance=-1)


def test_coordinates_from_columns_names_and_files(tmp_path):
    rna, atac = _toy()
    for sep in ("-", "_"):
        renamed = atac.copy()
        renamed.var_names = [n.replace(":", sep).replace("-", sep) for n in atac.var_names]
        assert peak_coordinates(renamed)["start"].tolist() == peak_coordinates(atac)["start"].tolist()
    columns = atac.copy()
    columns.var = peak_coordinates(atac).copy()
    columns.var_names = [f"peak{i}" for i in range(columns.n_vars)]
    assert peak_coordinates(columns)["end"].tolist() == [1700, 2600, 40500, 200500, 200, 9]
    with pytest.raises(ValueError, match="no coordinates"):
        peak_coordinates(ad.AnnData(np.zeros((2, 3)), var=pd.DataFrame(index=["p1", "p2", "p3"])))
    # genes without coordinates: the error names the fix; a BED or a GTF gives them
    bare = ad.AnnData(rna.X, var=pd.DataFrame(index=rna.var_names))
    with pytest.raises(ValueError, match="annotation="):
        peak_gene_links(bare, atac)
    bed = tmp_path / "genes.bed"
    bed.write_text("track name=genes\nchr1\t1000\t2000\tA\t0\t+\nchr2\t500\t600\tC\t0\t-\nchr3\t1\t2\tNOT_HERE\n")
    assert gene_coordinates(bare, bed)["gene"].tolist() == ["A", "C"]
    by_bed = peak_gene_links(bare, atac, annotation=bed, distance=10_000)
    assert set(by_bed["gene"]) == {"A", "C"} and len(by_bed) == 3
    gtf = tmp_path / "genes.gtf"
    gtf.write_text(
        '#!genome-build test\nchr1\tsrc\tgene\t1001\t2000\t.\t+\t.\tgene_id "g1"; gene_name "A";\n'
        'chr1\tsrc\texon\t1001\t1200\t.\t+\t.\tgene_id "g1"; gene_name "A";\n'
    )
    table = gene_coordinates(bare, gtf)
    assert table[["gene", "chrom", "start", "end"]].values.tolist() == [["A", "chr1", 1000, 2000]]
    with pytest.raises(FileNotFoundError, match="BED or GTF"):
        gene_coordinates(bare, tmp_path / "missing.gtf")
    empty = tmp_path / "empty.bed"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no BED lines"):
        gene_coordinates(bare, empty)


def test_gene_activity_and_linked_values():
    rna, atac = _toy()
    before = atac.copy()
    links = peak_gene_links(rna, atac, distance=10_000)
    activity = scm.pp.gene_activity(atac, links)
    X = atac.X.toarray()
    assert activity.var_names.tolist() == ["A", "B", "C"] and activity.var["n_peaks"].tolist() == [2, 1, 1]
    np.testing.assert_allclose(activity.X.toarray(), np.stack([X[:, 0] + X[:, 1], X[:, 2], X[:, 4]], axis=1))
    assert (atac.X != before.X).nnz == 0 and atac.var.equals(before.var)  # the input is left alone
    v1, v2 = peak_linked_values(rna, atac, links)
    R = rna.X.toarray()
    np.testing.assert_allclose(v1, np.log1p(R / R.sum(1, keepdims=True) * 1e4))
    totals = np.where(X.sum(1) > 0, X.sum(1), 1.0)
    np.testing.assert_allclose(v2, np.log1p(activity.X.toarray() / totals[:, None] * 1e4))
    with pytest.raises(ValueError, match="lacks the column"):
        scm.pp.gene_activity(atac, links.rename(columns={"peak": "region"}))
    with pytest.raises(ValueError, match="not in the ATAC modality"):
        scm.pp.gene_activity(atac, pd.DataFrame({"gene": ["A"], "peak": ["chr9:1-2"]}))


def test_real_multiome_links_follow_the_pairs(data_dir):
    """10x PBMC multiome (marker genes): Cell Ranger ARC's RNA intervals link genes to peaks whose activity
    correlates with the same nucleus's RNA, and not with another nucleus's."""
    mdata = md.read_h5mu(data_dir / "pbmc_multiome_1k_markers.h5mu")
    rna, atac = mdata["rna"], mdata["atac"]
    links = peak_gene_links(rna, atac)
    # every link is within the window: checked against the intervals directly
    genes = gene_coordinates(rna).set_index("gene")
    peaks = peak_coordinates(atac)
    for gene, peak, distance in links[["gene", "peak", "distance"]].itertuples(index=False):
        g, p = genes.loc[gene], peaks.loc[peak]
        assert g["chrom"] == p["chrom"] and distance == max(0, g["start"] - p["end"], p["start"] - g["end"]) <= 1e5
    assert links["gene"].nunique() >= 40 and links["peak"].nunique() >= 150  # 45 genes, 174 peaks near them
    v1, v2 = peak_linked_values(rna, atac, links)
    z1, z2 = profiles(v1), profiles(v2)
    paired = np.einsum("ij,ij->i", z1, z2)
    shuffled = np.einsum("ij,ij->i", z1, z2[np.random.default_rng(0).permutation(len(z2))])
    assert paired.mean() > 0.1 and abs(shuffled.mean()) < 0.03  # measured: 0.18 and about 0
    assert paired.mean() / (paired.std() / np.sqrt(len(paired))) > 20

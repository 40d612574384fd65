import mudata as md
import pandas as pd
import pytest

from scmatch.links import antibody_name, antibody_table, protein_gene_links


def test_table_is_well_formed():
    table = antibody_table()
    assert list(table.columns) == ["antibody", "human", "mouse"]
    assert table["antibody"].is_unique
    assert ((table["human"] != "") | (table["mouse"] != "")).all()  # every row links to something
    # a few facts of the CD nomenclature (HCDM): the gene coding each antigen
    facts = {"CD20": "MS4A1", "CD16": "FCGR3A", "CD56": "NCAM1", "CD45RA": "PTPRC", "CD127": "IL7R", "CD11c": "ITGAX"}
    human = table.set_index("antibody")["human"]
    assert {k: human[k] for k in facts} == facts
    assert table.set_index("antibody").loc["CD8b", "mouse"] == "Cd8b1"


@pytest.mark.parametrize(
    ("feature", "name"),
    [
        ("ADT_CD115(CSF-1R)_A0105", "CD115"),
        ("CD3_TotalSeqB", "CD3"),
        ("HLA-A-B-C", "HLA-A-B-C"),
        ("ADT_CD21-CD35(CR2-CR1)_A0107", "CD21-CD35"),
        ("CD4-ADT", "CD4"),
    ],
)
def test_antibody_name_strips_panel_decorations(feature, name):
    assert antibody_name(feature) == name


def test_links_through_table_and_by_name_never_controls():
    proteins = ["CD20_TotalSeqB", "CD3_TotalSeqB", "TIGIT", "IgG1_control_TotalSeqB", "CD9999", "CD45RA", "HTO_A"]
    genes = ["MS4A1", "CD3E", "CD3D", "TIGIT", "PTPRC", "IGHG1", "ACTB"]
    links = protein_gene_links(proteins, genes)
    assert links.to_dict("list") == {
        "protein": ["CD20_TotalSeqB", "CD3_TotalSeqB", "TIGIT", "CD45RA"],
        "genes": ["MS4A1", "CD3E;CD3D", "TIGIT", "PTPRC"],
        "source": ["table", "table", "table", "table"],
    }
    # a gene named like the antibody, absent from the table, is linked by name; case and separators are ignored
    by_name = protein_gene_links(["Foxp3"], ["FOXP3", "ACTB"])
    assert by_name.to_dict("list") == {"protein": ["Foxp3"], "genes": ["FOXP3"], "source": ["name"]}
    assert protein_gene_links(["IgG2a_control"], ["IGHG2A"]).empty


def test_mouse_symbols(tmp_path):
    links = protein_gene_links(["ADT_CD8b(Ly-3)_A0230", "ADT_I-A-I-E_A0117", "ADT_CD24_A0212"],
                               ["Cd8b1", "H2-Aa", "H2-Ab1", "Cd24a", "Actb"])  # fmt: skip
    assert list(links["genes"]) == ["Cd8b1", "H2-Aa;H2-Ab1", "Cd24a"]


def test_real_panels(cite_path, data_dir):
    """The number of proteins linked on the local CITE-seq sets (their RNA panels are gene selections)."""
    expected = {cite_path: 11, data_dir / "totalvi_sln_340.h5mu": 24, data_dir / "pbmc_1k_protein_v3.h5mu": 5}
    found = {}
    for path in expected:
        mdata = md.read_h5mu(path)
        found[path] = len(protein_gene_links(mdata["adt"].var_names, mdata["rna"].var_names))
    assert found == expected
    assert isinstance(protein_gene_links([], ["A"]), pd.DataFrame)

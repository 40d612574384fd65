"""Feature links: what is known about which feature of one modality measures what a feature of the other does.

For CITE-seq, the gene coding each protein (:func:`protein_gene_links`, from a curated table of antibody names
shipped with the package, :func:`antibody_table`). For RNA + ATAC, the peaks near each gene
(:func:`peak_gene_links`, from the peaks' and the genes' coordinates), whose summed counts are the gene's
activity (:func:`scmatch.pp.gene_activity`). Matching uses the links as a prior: each cell's values on the
linked features (:func:`linked_values`), standardised within the cells being matched (:func:`profiles`), give
every candidate pair a correlation that the network never had to learn, added to its similarity with a weight
chosen on the held-out reference pairs (:func:`choose_weight`; 0 when it does not help there).
:func:`scmatch.tl.match_modalities` does all of this by default (``links="auto"``); benchmarks/README.md, *Feature
links*, has the numbers.
"""

from ..model._prior import PairPrior
from ._peaks import DEFAULT_DISTANCE, gene_coordinates, peak_coordinates, peak_gene_links, peak_linked_values
from ._profiles import linked_values, profiles
from ._table import antibody_name, antibody_table, protein_gene_links
from ._weight import MIN_LINK_SEPARATION, MIN_LINK_T, MIN_PAIRS, WEIGHT_GRID, choose_weight

__all__ = [
    "DEFAULT_DISTANCE",
    "MIN_LINK_SEPARATION",
    "MIN_LINK_T",
    "MIN_PAIRS",
    "WEIGHT_GRID",
    "PairPrior",
    "antibody_name",
    "antibody_table",
    "choose_weight",
    "gene_coordinates",
    "linked_values",
    "peak_coordinates",
    "peak_gene_links",
    "peak_linked_values",
    "profiles",
    "protein_gene_links",
]

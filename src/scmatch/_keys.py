"""One place that builds the names of the keys scmatch writes."""

from __future__ import annotations


class Key:
    """Key names written by scmatch functions."""

    @staticmethod
    def probabilities(key_added: str) -> str:
        """``mdata.obsp`` key of the match-probability matrix."""
        return f"{key_added}_probabilities"

    @staticmethod
    def embedding(key_added: str) -> str:
        """``.obsm`` key (in each modality) of the learned joint embedding."""
        return f"X_{key_added}"

    @staticmethod
    def joint_embedding(key_added: str) -> str:
        """``.obsm`` key (in each modality) of the shared projection of the joint embedding, for plots."""
        return f"X_{key_added}_joint"

    @staticmethod
    def confidence(key_added: str) -> str:
        """``.obs`` column (in each modality) of the per-cell match confidence."""
        return f"{key_added}_confidence"

    @staticmethod
    def lsi() -> str:
        """``.obsm`` key of the LSI embedding."""
        return "X_lsi"

    @staticmethod
    def coreset(key_added: str) -> tuple[str, str]:
        """``.obs`` columns of a coreset selection: (selected, weight)."""
        return f"{key_added}_selected", f"{key_added}_weight"

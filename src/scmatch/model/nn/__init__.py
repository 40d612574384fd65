"""Torch modules of the metric model: the cross-attention matcher, ensembles, losses and metrics (no AnnData)."""

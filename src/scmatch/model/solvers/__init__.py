"""Solvers: candidate search, Sinkhorn and assignment on a sparse support, calibration, coreset selection."""

"""Datasets: loaders of public paired data and a simulator of paired multiome data."""

from ._loaders import bmmc_cite_starter, bmmc_multiome_starter, neurips2021_match_modality
from ._simulate import simulate_multiome

__all__ = ["bmmc_cite_starter", "bmmc_multiome_starter", "neurips2021_match_modality", "simulate_multiome"]

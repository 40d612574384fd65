"""scmatch.datasets."""

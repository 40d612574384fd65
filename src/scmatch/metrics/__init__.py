"""scmatch.metrics."""

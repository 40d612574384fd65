"""scmatch.model."""

"""scmatch.io."""

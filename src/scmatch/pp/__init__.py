"""scmatch.pp."""

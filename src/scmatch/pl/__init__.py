"""scmatch.pl."""

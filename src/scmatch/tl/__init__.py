"""scmatch.tl."""

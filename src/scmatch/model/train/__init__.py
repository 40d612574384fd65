"""Training: the loop, its objective, early stopping, pair sampling and ensemble members trained in threads."""

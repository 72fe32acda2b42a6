"""Per-request DataLoaders: one batched SQL statement per batch, plain rows out."""

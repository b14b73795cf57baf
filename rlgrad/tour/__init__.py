"""Teaching material built on the formula layer: the seeds' worked examples, recomputed."""

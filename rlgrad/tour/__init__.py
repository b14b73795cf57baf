"""Teaching material built on the formula layer: the course's worked examples, recomputed."""

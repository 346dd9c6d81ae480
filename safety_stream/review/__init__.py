"""The safety review workspace's domain: the review dataset and what is computed from it."""

"""Promote a whole release: many images with their graphs, pinned, gated, sharded, tags moved last."""

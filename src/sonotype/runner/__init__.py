"""Runs over collections into the store, exactly once and resumable: one writer (``batch``) with files detected
in this process, a pool of worker processes (``parallel``) or a Ray cluster (``ray_cluster``)."""

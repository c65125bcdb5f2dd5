"""Sound types: region embedding sequences (``sequences``), DTW (``dtw``), clustering (``cluster``), agreement
with expert labels (``agreement``, ``clustereval``), maps (``maps``), search by example (``search``), the
``sonotype cluster`` job (``discover``), curated labels back to training (``curation``)."""

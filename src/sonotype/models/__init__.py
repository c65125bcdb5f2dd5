"""Encoders and embedding backends: the LSTM-V3 encoder and its config (``lstm_v3``), the same local conv shared
by overlapping windows (``sharedconv``), checkpoints that carry their config (``checkpoint``), window embeddings
and scores of a file (``embed``), device/bf16/batched scoring (``infer``), pretrained backends (``backends``)."""

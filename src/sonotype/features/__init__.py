"""Spectrogram front end: the 512/256 STFT, band, dB or PCEN, 32-frame windows (``frontend``, numpy; the same
in torch on any device: ``torch_frontend``); max-pooling over time (``pooling``); the one colour table and level
rule for pictures of spectrograms (``render``)."""

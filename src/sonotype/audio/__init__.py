"""Audio in: where in a file (``span``: samples [start, stop) of one channel), any format (libsndfile, ffmpeg),
any rate and length, read block by block (``io``); rate conversion with libsoxr, streamed (``resample``);
synthetic recordings for tests and the demo (``synth``)."""

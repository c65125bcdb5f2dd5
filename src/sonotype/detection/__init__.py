"""Detection: scores to regions (``regions``), event-level scoring (``events``), the vocalisation-vs-background
detector and its training (``detector``), window-level evaluation (``evaluate``), one file streamed through a
detector (``detect``)."""

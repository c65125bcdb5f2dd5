"""Figures and model reports: the only part of sonotype that imports matplotlib.

Figure functions take plain arrays and write ``<out_stem>.png`` and ``<out_stem>.svg``
(returning the paths), using matplotlib's object-oriented API on the Agg canvas: no pyplot,
no global state, nothing left open. :func:`write_model_report` turns a :class:`ModelReport`
into ``README.md`` + ``report.html`` beside its figures.
"""

from .figures import (
    confusion_figure,
    filters_figure,
    gallery_figure,
    local_filters,
    pr_curve_figure,
    recording_overview_figure,
    training_curve_figure,
)
from .maps import embedding_map_figure, thumbnail_subset
from .model_report import (
    SECTIONS,
    ModelReport,
    figures_for_checkpoint,
    figures_for_evaluation,
    report_from_checkpoint,
    write_model_report,
)

__all__ = [
    "SECTIONS", "ModelReport", "confusion_figure", "embedding_map_figure", "figures_for_checkpoint",
    "figures_for_evaluation", "filters_figure", "gallery_figure", "local_filters", "pr_curve_figure",
    "recording_overview_figure", "report_from_checkpoint", "thumbnail_subset", "training_curve_figure",
    "write_model_report",
]

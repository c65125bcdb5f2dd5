"""``sonotype serve``: a web application over the result database.

Look at and listen to recordings, detected regions and sound types; curate them (labels, notes,
cluster names, merges, splits) when the server runs with an edit token. :func:`create_app` builds
the FastAPI application; :func:`serve` runs it with uvicorn.
"""

from .app import TOKEN_ENV, create_app, serve
from .context import Limits

__all__ = ["TOKEN_ENV", "Limits", "create_app", "serve"]

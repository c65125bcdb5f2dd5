"""sonotype: find, cluster, look at and listen to animal vocalisations in long recordings.

Data flow (each module imports only from earlier ones)::

    errors, units -> io -> features -> model -> train / detect -> store -> analysis -> report -> web / cli
"""

import os as _os

# OpenMP threads that spin while waiting collapse throughput (~10x here) when another process
# shares the cores; sleeping waits cost nothing measurable on an idle machine. Must be set
# before torch loads its OpenMP runtime; an explicit user setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

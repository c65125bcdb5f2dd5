"""sonotype: find, cluster, look at and listen to animal vocalisations in long recordings.

Data flow (each module imports only from earlier ones)::

    errors, units -> io -> features -> model -> train / detect -> store -> analysis -> report -> web / cli
"""

__version__ = "0.1.0"

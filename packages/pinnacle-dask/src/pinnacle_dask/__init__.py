"""pinnacle-dask: run pinnacledb jobs on Dask.

* ``dask://HOST:PORT`` — a running ``dask.distributed`` scheduler (port 8786 by default);
* ``dask+local://?workers=N`` — a ``LocalCluster`` of N single-threaded worker processes on this
  machine, started on first use and stopped when the Datalayer closes (dashboard off).

Importing this package does not import dask: the client is made on first submit.
"""

from __future__ import annotations

from pinnacle_dask.backend import DaskComputeBackend

__version__ = "0.1.0"

__all__ = ["DaskComputeBackend", "__version__"]

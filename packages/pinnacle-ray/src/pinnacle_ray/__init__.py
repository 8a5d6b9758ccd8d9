"""pinnacle-ray: run pinnacledb jobs on Ray.

* ``ray://HOST:PORT`` — a running Ray cluster, reached through Ray Client (port 10001 by
  default, as ``ray start --head`` opens it);
* ``ray+local://?workers=N`` — a Ray instance of N CPUs started in this process on first use
  and shut down when the Datalayer closes (dashboard off).

Importing this package does not import ray: Ray is started or connected on first submit.
"""

from __future__ import annotations

from pinnacle_ray.backend import RayComputeBackend

__version__ = "0.1.0"

__all__ = ["RayComputeBackend", "__version__"]

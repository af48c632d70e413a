"""The Ray engine: the same runs as the local engine, on a Ray cluster (optional extra ``mammoscreen[ray]``).

Nothing here changes what a run computes or writes. The driver (the process that runs ``mammoscreen``)
keeps the one engine loop of :mod:`mammoscreen.engine.run` - journal, failures, maps, figures,
``predictions.csv`` in the official row order - and the pipeline's stage files; Ray only runs the work:

* :class:`RayExecutor` (prediction): a pool of actors, each holding one model built once from the
  predictor's picklable :class:`~mammoscreen.models.factory.PredictorRequest`, running the engine's own
  :class:`~mammoscreen.engine.work.UnitRunner` on batches of work units;
* :class:`RayTaskPool` (crop, centres, DICOM conversion): a ``concurrent.futures`` executor whose calls
  are Ray tasks, handed to the same :func:`~mammoscreen.core.parallel_map.map_images` the local engine
  uses with its process pool;
* :func:`ray_session`: connects to a cluster (``--address``) or starts a local Ray instance, and stops
  only what it started.

``ray`` is imported only when one of these is used: ``import mammoscreen`` and the local engine never
import it.
"""

from .executor import RayExecutor
from .session import RaySettings, ray_session
from .tasks import RayTaskPool

__all__ = ["RayExecutor", "RaySettings", "RayTaskPool", "ray_session"]

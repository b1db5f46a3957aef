"""Official weights: where they are published, how they are fetched, cached and checked.

* :class:`PretrainedWeights` describes one file (address, page, hash, eval preprocessing);
  the entries of each variant are in :mod:`mvit_tasks.modeling.backbone.pretrained`.
* :func:`fetch` / :func:`weights_file` look in ``$MVIT_TASKS_WEIGHTS_MIRROR`` folders, then
  the torch hub cache, then download (progress bar, hash check, atomic rename).
* ``zoo:<variant>[.<tag>]`` specs (:func:`resolve_zoo`) work wherever a weights path does.
"""
from .download import (MIRROR_ENV, HashMismatchError, WeightsDownloadError, cache_dir, fetch,
                       read_sidecar, sha256_file)
from .weights import PretrainedWeights
from .zoo import (ZOO_PREFIX, get_weights, is_zoo_spec, list_weights, resolve_zoo, split_name,
                  weights_file)

__all__ = [
    "MIRROR_ENV", "ZOO_PREFIX", "HashMismatchError", "PretrainedWeights", "WeightsDownloadError",
    "cache_dir", "fetch", "get_weights", "is_zoo_spec", "list_weights", "read_sidecar",
    "resolve_zoo", "sha256_file", "split_name", "weights_file",
]

"""GPU accumulation models and real-GPU data.

- :mod:`.models`: :class:`BlockFMAModel` (one tensor-core path as plain parameters),
  :class:`TensorCoreModel` (a GPU's paths), the named GPUs in :data:`MODELS`,
  :func:`get_model`, :func:`select_block`.
- :mod:`.tcdata`: loader for real-GPU dot-product outputs (Khattak & Mikaitis' layout).
"""

from .models import (MODELS, BlockFMAModel, TensorCoreModel, get_model, list_models,
                     select_block)
from .tcdata import TCDataset, list_datasets, load_dataset

__all__ = ["BlockFMAModel", "TensorCoreModel", "MODELS", "get_model", "list_models",
           "select_block", "TCDataset", "load_dataset", "list_datasets"]

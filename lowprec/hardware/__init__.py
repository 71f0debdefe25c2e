"""GPU accumulation models and real-GPU data.

- :mod:`.models`: the tensor-core models of :mod:`lowprec.tensorcore` under their first
  import path (:class:`BlockFMAModel`, :class:`TensorCoreModel`, :data:`MODELS`, ...).
- :mod:`.tcdata`: loader for real-GPU dot-product outputs (Khattak & Mikaitis' layout)
  and discovery of the data sets under a folder.
- :mod:`.lowprec_capture`: the standalone capture script (numpy + torch only) users copy
  to a GPU machine (``lowprec capture --write-script PATH``).
- ``lowprec capture`` / ``compare`` / ``fit`` (imported on use): :mod:`.capture` and
  :mod:`.capture_format` (the capture file); :mod:`.compare` (entry points), built from
  :mod:`.candidates` (what an op is replayed under), :mod:`.scoring` (bit matches, ULP
  histograms, op records), :mod:`.train_replay` (the captured training step) and
  :mod:`.report` (tables, PNG/HTML); :mod:`.fit` (block-FMA parameter search).
"""

from .models import (MODELS, BlockFMAModel, TensorCoreModel, get_model, list_models,
                     select_block)
from .tcdata import TCDataset, list_datasets, load_dataset

__all__ = ["BlockFMAModel", "TensorCoreModel", "MODELS", "get_model", "list_models",
           "select_block", "TCDataset", "load_dataset", "list_datasets"]

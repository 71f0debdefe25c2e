"""GPU accumulation models and real-GPU data.

- :mod:`.models`: the tensor-core models of :mod:`lowprec.tensorcore` under their first
  import path (:class:`BlockFMAModel`, :class:`TensorCoreModel`, :data:`MODELS`, ...), and
  the AMD matrix-core models of :mod:`lowprec.matrixcore` (:class:`MatrixCoreModel`,
  :class:`MatrixCorePath`, :data:`MC_MODELS`, ...).
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

from .models import (MC_MODELS, MODELS, BlockFMAModel, MatrixCoreModel, MatrixCorePath,
                     TensorCoreModel, get_mc_model, get_model, list_mc_models, list_models,
                     select_block, select_path)
from .tcdata import TCDataset, list_datasets, load_dataset

__all__ = ["BlockFMAModel", "TensorCoreModel", "MODELS", "get_model", "list_models",
           "select_block", "MatrixCoreModel", "MatrixCorePath", "MC_MODELS", "get_mc_model",
           "list_mc_models", "select_path", "TCDataset", "load_dataset", "list_datasets"]

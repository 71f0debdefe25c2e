"""The tensor-core (NVIDIA) and matrix-core (AMD) models, under their first import path.

They are plain data that :func:`lowprec.matmul` and the exact references use, so they live
in :mod:`lowprec.tensorcore`, below the numerics; this module re-exports them.
"""

from ..matrixcore import (MC_MODELS, MatrixCoreModel, MatrixCorePath, get_mc_model,
                          list_mc_models, select_path)
from ..tensorcore import (MODELS, BlockFMAModel, TensorCoreModel, get_model, list_models,
                          select_block)

__all__ = ["BlockFMAModel", "TensorCoreModel", "MODELS", "get_model", "select_block",
           "list_models", "MatrixCoreModel", "MatrixCorePath", "MC_MODELS", "get_mc_model",
           "list_mc_models", "select_path"]

"""Training studies: precision recipes side by side, over seeds, with confidence intervals,
as a sweep of independent tasks on Dask (``lowprec study``), and paper reproductions
(``lowprec reproduce``).

- :mod:`.config`: the recipes and :class:`StudyConfig`;
- :mod:`.train`: one MLP run (:func:`train_recipe`) and the sweep's task entry;
- :mod:`.sweep`: tasks on Dask (serial, local cluster, a user's scheduler), results kept;
- :mod:`.report`: mean +- 95 % CI tables, effects against a baseline, summary.json, pictures;
- :mod:`.cli`: :func:`run_study` and the command.
"""

from .cli import StudyResult, main, register, run_study, study_tasks
from .config import (DEFAULT_RECIPES, MODELS, RECIPES, SCHEDULES, StudyConfig, recipe_description,
                     recipe_policy)
from .report import aggregate, format_table
from .sweep import Task, run_tasks
from .train import train_recipe

__all__ = ["RECIPES", "DEFAULT_RECIPES", "MODELS", "SCHEDULES", "StudyConfig", "recipe_policy",
           "recipe_description", "train_recipe", "run_study", "StudyResult", "study_tasks",
           "Task", "run_tasks", "aggregate", "format_table", "register", "main"]

"""A CSV logger that continues a run's ``metrics.csv`` instead of deleting it.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` whenever its folder is not empty (and warns, even when the folder
only holds the run's ``config.yaml``). A run resumed from its ``last.ckpt`` writes into its own folder, so its
metrics must continue the file: rows are appended, and the header grows when new keys appear, as Lightning already
does within one run.
"""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from typing_extensions import override


class AppendingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, keeping what an earlier part of the run wrote in ``metrics.csv``."""

    @override
    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(next(csv.reader(file), []))


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` continues across resumed parts of a run (see the module docstring)."""

    @property
    @override
    @rank_zero_experiment
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment

"""metrics.csv in the run folder: one row per epoch, readable by any spreadsheet or pandas."""

import csv
import os
from pathlib import Path

from logger.tracker import Tracker


class CSVTracker(Tracker):
    """Always on. A resumed run keeps the rows of the epochs its checkpoint holds and replaces
    the rest, so the file never lists an epoch twice."""

    writes = "metrics.csv"

    FILE = "metrics.csv"

    def start(self, run_dir: Path, config: dict, epoch: int, step: int) -> None:
        self.path = Path(run_dir) / self.FILE
        self.rows: list[dict] = []
        self.columns: list[str] = []
        if self.path.exists():
            with open(self.path, newline="", encoding="utf-8") as file:
                reader = csv.DictReader(file)
                self.rows = [row for row in reader if row.get("epoch", "").isdigit() and int(row["epoch"]) <= epoch]
                self.columns = list(reader.fieldnames or [])
            self._write_all()

    def log_epoch(self, epoch: int, step: int, values: dict[str, float]) -> None:
        row = {"epoch": epoch, "step": step, **values}
        self.rows.append(row)
        if not set(row) <= set(self.columns):  # new columns: write the file afresh with them
            self.columns = list(dict.fromkeys([*self.columns, *row]))
            self._write_all()
            return
        with open(self.path, "a", newline="", encoding="utf-8") as file:
            csv.DictWriter(file, fieldnames=self.columns).writerow(row)

    def _write_all(self) -> None:
        """Write the whole file anew: through a temporary file, so that a kill leaves the old one."""
        temporary = self.path.with_name(f".tmp-{self.FILE}")
        with open(temporary, "w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(temporary, self.path)

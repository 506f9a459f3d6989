"""Metric sinks: a CSV file (always) and TensorBoard (when the package is installed)."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger("hand_lib.train")


class CsvLog:
    """Append-only CSV of metric rows with a header.

    Rows are appended and flushed one by one, so a killed run keeps every row written before
    the kill. If a row brings a new column, the file is rewritten (atomically) with the wider
    header; missing values are empty cells.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        if self.path.is_file() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as handle:
                self.columns = next(csv.reader(handle), [])

    def read(self) -> list[dict[str, str]]:
        """All rows as string dicts (empty if the file does not exist)."""
        if not self.path.is_file():
            return []
        with open(self.path, newline="") as handle:
            return list(csv.DictReader(handle))

    def append(self, row: dict[str, Any]) -> None:
        """Write one row, extending the header if it has new keys."""
        new = [k for k in row if k not in self.columns]
        if new and self.columns:
            self._rewrite(self.read(), self.columns + new)
        elif new:
            self.columns = list(row)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.columns).writerow({k: _cell(v) for k, v in row.items()})
            handle.flush()

    def truncate_after(self, step: int) -> int:
        """Drop rows whose ``step`` is greater than ``step`` (rows a killed run logged after its
        last checkpoint); return how many were dropped."""
        rows = self.read()
        kept = [r for r in rows if int(r["step"]) <= step]
        if len(kept) != len(rows):
            self._rewrite(kept, self.columns)
        return len(rows) - len(kept)

    def _rewrite(self, rows: list[dict[str, str]], columns: list[str]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text(buffer.getvalue(), newline="")
        os.replace(tmp, self.path)
        self.columns = columns


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)  # shortest exact form: the CSV round-trips to the same float
    return value


class TensorBoardLog:
    """Scalars to TensorBoard; :meth:`open` returns None (with one info message) when the
    ``tensorboard`` package is not installed."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    @classmethod
    def open(cls, log_dir: str | Path) -> TensorBoardLog | None:
        """A writer under ``log_dir``, or None if TensorBoard is unavailable."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed: metrics go to CSV only")
            return None
        return cls(SummaryWriter(log_dir=str(log_dir)))

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        """Write each value as ``<prefix><name>`` at ``step``."""
        for name, value in values.items():
            self._writer.add_scalar(prefix + name, value, step)

    def close(self) -> None:
        """Flush and close."""
        self._writer.close()

"""Seeded card transactions in the credit-card data set's schema, for tests.

The real data set (``lmforge data fetch creditcard``) is what lmforge measures on; this
generator writes small files with the same columns (``Time``, ``V1``-``V28``, ``Amount``,
``Class``) so unit tests need no download. How it is built, so a test can reason about it:

- ``Time`` rises over two days (172,800 s) in sorted random steps, as the real file does.
- ``V1``-``V28`` are independent standard normals for genuine transactions. Frauds are
  shifted on four components, as the real frauds stand out on V10, V12, V14 (lower) and V4
  (higher): by ``separation`` standard deviations, so a model has something to find.
- Drift: V1's mean moves linearly from 0 to ``drift`` over the two days, for every
  transaction, so the later (test) part differs from the earlier (training) part.
- ``Amount`` is log-normal (median about 22), frauds a little smaller and more spread.
- ``Class`` is 1 for a ``fraud_rate`` share of rows, chosen at random.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLUMNS = ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"]
TWO_DAYS = 172_800.0
_FRAUD_SHIFT = {"V4": 1.0, "V10": -1.0, "V12": -1.0, "V14": -1.0}


def synthetic_transactions(
    rows: int = 5_000,
    *,
    seed: int = 0,
    fraud_rate: float = 0.01,
    separation: float = 2.0,
    drift: float = 1.0,
) -> dict[str, np.ndarray]:
    """Columns of ``rows`` transactions in the real data set's schema (see the module)."""
    rng = np.random.default_rng(seed)
    time = np.sort(rng.uniform(0, TWO_DAYS, rows)).round()
    fraud = rng.random(rows) < fraud_rate
    columns: dict[str, np.ndarray] = {"Time": time}
    for index in range(1, 29):
        name = f"V{index}"
        values = rng.standard_normal(rows)
        values += fraud * separation * _FRAUD_SHIFT.get(name, 0.0)
        if index == 1:
            values += drift * time / TWO_DAYS
        columns[name] = values
    amount = np.where(fraud, rng.lognormal(2.5, 1.6, rows), rng.lognormal(3.1, 1.2, rows))
    columns["Amount"] = amount.round(2)
    columns["Class"] = fraud.astype(np.int64)
    return columns


def write_transactions(path: Path, rows: int = 5_000, **options: float | int) -> Path:
    """``synthetic_transactions`` written to ``path`` (``.parquet`` or ``.csv``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pa.table(synthetic_transactions(rows, **options))  # type: ignore[arg-type]
    path = Path(path)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    return path

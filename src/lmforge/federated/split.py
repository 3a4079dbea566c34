"""Splitting one data set among simulated sites: evenly at random, or non-IID by label with
a Dirichlet draw (Hsu et al., 2019): for each label, the share of its records each site gets
comes from ``Dirichlet(alpha, ..., alpha)``; a small alpha leaves most sites with few labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lmforge.errors import LmforgeError

MAX_DRAWS = 1000  # redraws until every site holds enough records


def split_records(
    records: Sequence[dict[str, Any]],
    sites: int,
    *,
    dirichlet: float | None,
    seed: int,
    label_key: str = "label",
) -> list[list[dict[str, Any]]]:
    """``records`` divided among ``sites``: each record goes to exactly one site.

    Raises:
        LmforgeError: fewer records than sites; a Dirichlet split of records without
            labels; or no draw that gives every site at least ``min_size`` records.
    """
    if len(records) < 2 * sites:
        raise LmforgeError(f"sites.count: {sites} sites need at least {2 * sites} training "
                           f"records; run.data.train has {len(records)}")  # fmt: skip
    rng = np.random.default_rng(seed)
    if dirichlet is None:
        order = rng.permutation(len(records))
        return [[records[i] for i in part] for part in np.array_split(order, sites)]
    if any(label_key not in record for record in records):
        raise LmforgeError("sites.dirichlet: splits by label, and these records have no "
                           f"{label_key!r}; use an even split or sites.files")  # fmt: skip
    labels = np.array([str(record[label_key]) for record in records])
    min_size = min(10, len(records) // (2 * sites))
    for _ in range(MAX_DRAWS):
        parts: list[list[int]] = [[] for _ in range(sites)]
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet([dirichlet] * sites)
            cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
            for site, part in enumerate(np.split(members, cuts)):
                parts[site] += part.tolist()
        if min(len(part) for part in parts) >= min_size:
            return [[records[i] for i in sorted(part)] for part in parts]
    raise LmforgeError(f"sites.dirichlet: no split of {len(records)} records among {sites} "
                       f"sites gave each at least {min_size} in {MAX_DRAWS} draws; raise "
                       "dirichlet or use fewer sites")  # fmt: skip

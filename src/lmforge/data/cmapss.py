"""NASA's C-MAPSS turbofan files, read as NASA ships them, and a seeded simulator that
writes the same files.

The format (Saxena et al., "Damage Propagation Modeling for Aircraft Engine Run-to-Failure
Simulation", 2008): per subset ``FD00x``, three whitespace-separated text files without a
header, one engine cycle per line of 26 numbers (unit, cycle, 3 operational settings, 21
sensors):

- ``train_FD00x.txt``: every unit run to failure (its last cycle is the failure);
- ``test_FD00x.txt``: every unit cut off some time before failure;
- ``RUL_FD00x.txt``: one number per test unit, in unit order: the cycles it had left.

Training RUL is the cycles to the unit's last cycle, capped (piecewise-linear: a new
engine's RUL is not knowable from its sensors, so the target stays at ``cap`` until wear
shows; 125 by default, as the literature uses).

No real C-MAPSS files can be downloaded here, so ``simulate_cmapss`` writes files in that
format (how, exactly: ``SIMULATOR_README``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmforge.errors import LmforgeError
from lmforge.home import atomic_write_text

SETTINGS = [f"setting_{i}" for i in range(1, 4)]
SENSORS = [f"s{i}" for i in range(1, 22)]
COLUMNS = ["unit", "cycle", *SETTINGS, *SENSORS]
RUL_CAP = 125
SUBSETS = {"FD001": 1, "FD002": 6}  # the simulated subsets: how many operating conditions


@dataclass(frozen=True)
class CmapssSubset:
    """One subset's files, read: rows ``(N, 26)`` in ``COLUMNS`` order."""

    name: str
    train: np.ndarray
    test: np.ndarray
    test_rul: np.ndarray  # (test units,) cycles left after each test unit's last row

    def test_units(self) -> np.ndarray:
        return np.unique(self.test[:, 0]).astype(np.int64)


def read_cmapss_file(path: Path) -> np.ndarray:
    """The rows of one ``train_``/``test_`` file as ``(N, 26)`` float64.

    Raises:
        LmforgeError: a line with another number of fields, a field that is not a number,
            a unit or cycle that is not a positive whole number, or cycles of a unit that do
            not count up from 1 (the message names the file and line).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise LmforgeError(f"{path}: cannot read it ({err})") from None
    rows: list[list[float]] = []
    last: tuple[int, int] | None = None  # (unit, cycle) of the previous line
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) != len(COLUMNS):
            raise LmforgeError(
                f"{where}: {len(fields)} fields; a C-MAPSS line has {len(COLUMNS)} "
                "(unit, cycle, 3 operational settings, 21 sensors), separated by spaces"
            )
        try:
            values = [float(field) for field in fields]
        except ValueError:
            bad = next(f for f in fields if not _is_number(f))
            raise LmforgeError(f"{where}: {bad!r} is not a number") from None
        unit, cycle = values[0], values[1]
        if not all(v >= 1 and v == int(v) for v in (unit, cycle)):
            raise LmforgeError(f"{where}: unit {fields[0]} and cycle {fields[1]} must be "
                               "whole numbers from 1")  # fmt: skip
        expected = 1 if last is None or last[0] != unit else last[1] + 1
        if cycle != expected:
            raise LmforgeError(f"{where}: unit {int(unit)} cycle {int(cycle)}; expected cycle "
                               f"{expected} (a unit's cycles count up from 1)")  # fmt: skip
        last = (int(unit), int(cycle))
        rows.append(values)
    if not rows:
        raise LmforgeError(f"{path}: no rows")
    return np.asarray(rows, dtype=np.float64)


def read_rul_file(path: Path) -> np.ndarray:
    """``RUL_FD00x.txt``: one whole number per line (blank lines skipped).

    Raises:
        LmforgeError: a line that is not one whole number of 0 or more (naming the line).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise LmforgeError(f"{path}: cannot read it ({err})") from None
    values = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 1 or not _is_number(fields[0]) or float(fields[0]) < 0 or (
                float(fields[0]) != int(float(fields[0]))):  # fmt: skip
            raise LmforgeError(f"{path}:{number}: {line.strip()!r}; expected one whole number "
                               "of cycles left per line")  # fmt: skip
        values.append(int(float(fields[0])))
    return np.asarray(values, dtype=np.int64)


def load_cmapss(folder: Path, subset: str = "FD001") -> CmapssSubset:
    """The three files of ``subset`` in ``folder`` (NASA's names: ``train_FD001.txt``...).

    Raises:
        LmforgeError: a file is missing or malformed, or the RUL file does not have one
            line per test unit.
    """
    paths = {kind: folder / f"{kind}_{subset}.txt" for kind in ("train", "test", "RUL")}
    for path in paths.values():
        if not path.is_file():
            raise LmforgeError(f"{path}: no such file; a C-MAPSS subset is train_{subset}.txt, "
                               f"test_{subset}.txt and RUL_{subset}.txt in one folder "
                               "(lmforge data simulate cmapss writes them)")  # fmt: skip
    test = read_cmapss_file(paths["test"])
    rul = read_rul_file(paths["RUL"])
    units = len(np.unique(test[:, 0]))
    if len(rul) != units:
        raise LmforgeError(f"{paths['RUL']}: {len(rul)} lines for {units} test units in "
                           f"{paths['test']}; one line per unit, in unit order")  # fmt: skip
    return CmapssSubset(subset, read_cmapss_file(paths["train"]), test, rul)


def training_rul(rows: np.ndarray, cap: int = RUL_CAP) -> np.ndarray:
    """Each training row's remaining useful life: cycles to its unit's last cycle, at most
    ``cap``."""
    return np.minimum(_cycles_to_last(rows), cap)


def rul_of_test_rows(subset: CmapssSubset, cap: int | None = None) -> np.ndarray:
    """Each test row's remaining useful life, from the RUL file: the unit's cycles left
    after its last row plus the cycles from this row to that one (capped if ``cap``)."""
    units = subset.test[:, 0]
    left = subset.test_rul[np.searchsorted(subset.test_units(), units)]  # RUL lines: unit order
    rul = left + _cycles_to_last(subset.test)
    return rul if cap is None else np.minimum(rul, cap)


def _cycles_to_last(rows: np.ndarray) -> np.ndarray:
    """Each row's cycles to its unit's last row in ``rows``."""
    units, cycles = rows[:, 0], rows[:, 1]
    unique, index = np.unique(units, return_inverse=True)
    last = np.zeros(len(unique))
    np.maximum.at(last, index.reshape(-1), cycles)
    return last[index.reshape(-1)] - cycles


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


# --- the simulator --------------------------------------------------------------------

SIMULATOR_README = """\
# Simulated C-MAPSS files

Written by `lmforge data simulate cmapss` (lmforge.data.cmapss.simulate_cmapss): NASA's
C-MAPSS file format, generated here, because the real files cannot be downloaded on this
machine. Seed {seed}; subset {subset} ({conditions} operating condition(s)); {train_units}
training units run to failure, {test_units} test units cut off before failure.

How each unit is built (after Saxena et al. 2008, much simplified):

- Wear: w(t) = w0 + 0.02 (exp(r t) - 1) at cycle t, with initial wear w0 ~ U(0, 0.1) and
  rate r ~ U(0.011, 0.03) per unit; the health index is 1 - w(t) and the unit fails at the
  last cycle before w reaches 1 (lives of about 130 to 360 cycles, as FD001's 128-362).
- Operating conditions: FD001 has one, (0, 0, 100); FD002 has FD002's six (altitude in
  kft, Mach, throttle angle): (0, 0, 100), (10, 0.25, 100), (20, 0.7, 100), (25, 0.62, 60),
  (35, 0.84, 100), (42, 0.84, 100), one drawn at random per cycle. Settings carry small
  noise (sd 0.002 on the altitude, 0.0002 on the Mach number, none on the throttle angle).
- Sensors: 21 columns with realistic magnitudes (s1 T2 518.67, s2 T24 642, ... s21 W32
  23.3). Each condition scales a sensor's base value by a fixed factor (drawn once per
  sensor and condition from the seed, 1 for the first condition). Seven sensors (s1, s5,
  s6, s10, s16, s18, s19) are constant within a condition, as in FD001. The other fourteen
  add sensitivity x w(t)^1.5 (a sensitivity per sensor: some rise with wear, some fall,
  1-4% of the base value at failure) and Gaussian noise (0.05-0.5% of the base value).
- Test units: each cut off with a number of cycles left drawn uniformly from 5 to 145 (at
  most its life less 10), as FD001's RUL file ranges from 7 to 145; its RUL line is that
  number.

What it is not: NASA's simulation of a turbofan's thermodynamics. Sensors here are
independent given wear and condition; real sensors are coupled, and real wear has faults
that differ between subsets. Models are compared on it, not validated for engines.
"""

# A realistic magnitude per sensor (FD001's first cycle), and the sensors wear leaves alone.
_BASE = np.array([518.67, 642.0, 1590.0, 1400.0, 14.62, 21.61, 554.0, 2388.0, 9050.0, 1.3,
                  47.5, 521.7, 2388.0, 8140.0, 8.42, 0.03, 392.0, 2388.0, 100.0, 38.8,
                  23.3])  # fmt: skip
_CONSTANT = np.array([i - 1 for i in (1, 5, 6, 10, 16, 18, 19)])
_CONDITIONS = np.array([[0.0, 0.0, 100.0], [10.0, 0.25, 100.0], [20.0, 0.7, 100.0],
                        [25.0, 0.62, 60.0], [35.0, 0.84, 100.0], [42.0, 0.84, 100.0]])  # fmt: skip


def simulate_cmapss(
    folder: Path, subset: str = "FD001", *, seed: int = 0, train_units: int = 100,
    test_units: int = 100,
) -> Path:  # fmt: skip
    """Write ``train_{subset}.txt``, ``test_{subset}.txt``, ``RUL_{subset}.txt`` and a
    README (``SIMULATOR_README``) into ``folder``; returns ``folder``.

    Raises:
        LmforgeError: ``subset`` is not one the simulator writes (FD001, FD002).
    """
    if subset not in SUBSETS:
        raise LmforgeError(f"subset {subset!r}: the simulator writes {', '.join(SUBSETS)}")
    rng = np.random.default_rng(seed)
    conditions = SUBSETS[subset]
    factors = np.ones((conditions, len(SENSORS)))
    factors[1:] = rng.uniform(0.7, 1.1, (conditions - 1, len(SENSORS)))
    sensitivity = rng.uniform(0.01, 0.04, len(SENSORS)) * rng.choice([-1.0, 1.0], len(SENSORS))
    sensitivity[_CONSTANT] = 0.0
    noise = rng.uniform(0.0005, 0.005, len(SENSORS))
    noise[_CONSTANT] = 0.0
    folder.mkdir(parents=True, exist_ok=True)
    train = [
        _unit(rng, u, conditions, factors, sensitivity, noise) for u in range(1, train_units + 1)
    ]
    test, left = [], []
    for u in range(1, test_units + 1):
        rows = _unit(rng, u, conditions, factors, sensitivity, noise)
        cycles_left = int(rng.integers(5, min(145, len(rows) - 10) + 1))
        test.append(rows[: len(rows) - cycles_left])
        left.append(cycles_left)
    atomic_write_text(folder / f"train_{subset}.txt", _nasa_lines(np.concatenate(train)))
    atomic_write_text(folder / f"test_{subset}.txt", _nasa_lines(np.concatenate(test)))
    atomic_write_text(folder / f"RUL_{subset}.txt", "".join(f"{n}\n" for n in left))
    atomic_write_text(folder / "README.md", SIMULATOR_README.format(
        seed=seed, subset=subset, conditions=conditions, train_units=train_units,
        test_units=test_units))  # fmt: skip
    return folder


def _unit(rng: np.random.Generator, unit: int, conditions: int, factors: np.ndarray,
          sensitivity: np.ndarray, noise: np.ndarray) -> np.ndarray:  # fmt: skip
    """One unit's rows from cycle 1 to failure (see SIMULATOR_README)."""
    start, rate = rng.uniform(0.0, 0.1), rng.uniform(0.011, 0.03)
    life = int(math.log((1 - start) / 0.02 + 1) / rate)  # the last cycle with w < 1
    t = np.arange(1, life + 1, dtype=np.float64)
    wear = start + 0.02 * (np.exp(rate * t) - 1)
    condition = rng.integers(0, conditions, life)
    settings = _CONDITIONS[condition] + rng.normal(0, 1, (life, 3)) * [0.002, 0.0002, 0.0]
    base = _BASE * factors[condition]  # (life, 21)
    sensors = base * (1 + sensitivity * wear[:, None] ** 1.5 + noise * rng.normal(0, 1, (life, 21)))
    return np.column_stack([np.full(life, unit), t, settings, sensors])


def _nasa_lines(rows: np.ndarray) -> str:
    """NASA's layout: integers for unit and cycle, four decimals elsewhere, a trailing
    space on every line (the real files have one)."""
    return "".join(f"{int(r[0])} {int(r[1])} " + " ".join(f"{v:.4f}" for v in r[2:]) + " \n"
                   for r in rows)  # fmt: skip

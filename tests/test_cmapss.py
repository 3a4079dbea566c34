"""NASA's C-MAPSS files: read as NASA ships them (checked on lines in the real format,
written here), RUL targets from them, errors naming the file and line, and the seeded
simulator that writes the same format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lmforge.cli.main import app
from lmforge.data.cmapss import (
    COLUMNS,
    SENSORS,
    load_cmapss,
    read_cmapss_file,
    rul_of_test_rows,
    simulate_cmapss,
    training_rul,
)
from lmforge.data.timeseries import CMAPSS_DECIMALS, SensorScaling
from lmforge.errors import LmforgeError

# The first two cycles of FD001's unit 1 as NASA's train_FD001.txt has them (trailing
# space included), then a unit 2 of three cycles in the same layout.
REAL_FORMAT = """\
1 1 -0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 554.36 2388.06 9046.19 1.30 47.47 521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.00 39.06 23.4190 
1 2 0.0019 -0.0003 100.0 518.67 642.15 1591.82 1403.14 14.62 21.61 553.75 2388.04 9044.07 1.30 47.49 522.28 2388.07 8131.49 8.4318 0.03 392 2388 100.00 39.00 23.4236 
2 1 -0.0018 0.0006 100.0 518.67 641.89 1583.84 1391.28 14.62 21.61 554.53 2388.01 9054.72 1.30 47.50 522.16 2388.06 8155.48 8.3760 0.03 391 2388 100.00 38.94 23.4585 
2 2 0.0043 -0.0003 100.0 518.67 641.82 1587.05 1393.13 14.62 21.61 554.77 2388.05 9055.04 1.30 47.26 522.15 2388.11 8154.94 8.4005 0.03 391 2388 100.00 39.06 23.4619 
2 3 0.0018 0.0003 100.0 518.67 641.55 1588.32 1398.96 14.62 21.61 554.34 2388.01 9049.97 1.30 47.37 522.16 2388.04 8148.90 8.3999 0.03 391 2388 100.00 38.89 23.4583 
"""  # noqa: E501, W291


def _subset(folder: Path, test_text: str = REAL_FORMAT, rul: str = "112\n98\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_FD001.txt").write_text(REAL_FORMAT)
    (folder / "test_FD001.txt").write_text(test_text)
    (folder / "RUL_FD001.txt").write_text(rul)
    return folder


def test_real_format_lines_are_read_with_their_rul(tmp_path: Path) -> None:
    subset = load_cmapss(_subset(tmp_path / "cmapss"))
    assert subset.train.shape == (5, len(COLUMNS)) == (5, 26)
    assert subset.train[1, 1] == 2 and subset.train[0, 5] == pytest.approx(518.67)
    assert subset.train[0, -1] == pytest.approx(23.4190)
    assert training_rul(subset.train).tolist() == [1, 0, 2, 1, 0]  # to each unit's last cycle
    assert training_rul(subset.train, cap=1).tolist() == [1, 0, 1, 1, 0]
    assert subset.test_units().tolist() == [1, 2]
    # unit 1 ends at cycle 2 with 112 cycles left; unit 2 at cycle 3 with 98
    assert rul_of_test_rows(subset).tolist() == [113, 112, 100, 99, 98]
    assert rul_of_test_rows(subset, cap=100).tolist() == [100, 100, 100, 99, 98]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 1 0.1 0.2\n", r"x.txt:1: 4 fields; a C-MAPSS line has 26"),
        (REAL_FORMAT.replace("641.55", "n/a"), r"x.txt:5: 'n/a' is not a number"),
        (
            REAL_FORMAT.replace("2 3 0.0018", "2 4 0.0018"),
            r"x.txt:5: unit 2 cycle 4; expected cycle 3",
        ),
        (
            REAL_FORMAT.replace("2 1 -0.0018", "2.5 1 -0.0018"),
            r"x.txt:3: unit 2.5 and cycle 1 must be",
        ),
        ("\n\n", r"x.txt: no rows"),
    ],
)
def test_a_malformed_line_is_named_with_its_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "x.txt"
    path.write_text(text)
    with pytest.raises(LmforgeError, match=message):
        read_cmapss_file(path)


def test_the_rul_file_must_match_the_test_units(tmp_path: Path) -> None:
    with pytest.raises(LmforgeError, match=r"RUL_FD001.txt: 1 lines for 2 test units"):
        load_cmapss(_subset(tmp_path / "a", rul="112\n"))
    with pytest.raises(LmforgeError, match=r"RUL_FD001.txt:2: '9.5'; expected one whole number"):
        load_cmapss(_subset(tmp_path / "b", rul="112\n9.5\n"))
    with pytest.raises(LmforgeError, match=r"train_FD002.txt: no such file.*simulate cmapss"):
        load_cmapss(tmp_path / "a", "FD002")


def test_the_simulator_writes_the_format_with_wear_that_sensors_show(tmp_path: Path) -> None:
    folder = simulate_cmapss(tmp_path / "sim", "FD001", seed=3, train_units=20, test_units=10)
    subset = load_cmapss(folder)  # the reader above accepts it
    assert (folder / "README.md").read_text().startswith("# Simulated C-MAPSS files")
    train = subset.train
    units = train[:, 0]
    lives = np.array([(units == u).sum() for u in np.unique(units)])
    assert len(lives) == 20 and lives.min() >= 120 and lives.max() <= 370
    assert np.allclose(train[:, 2:5].round(1), [0.0, 0.0, 100.0])  # one operating condition
    sensors = train[:, 5:]
    spread = sensors.std(0) / np.abs(sensors.mean(0))
    constant = [0, 4, 5, 9, 15, 17, 18]  # s1, s5, s6, s10, s16, s18, s19
    assert np.all(spread[constant] < 1e-9) and np.all(np.delete(spread, constant) > 1e-4)
    rul = training_rul(train, cap=10**6)
    moving = np.delete(np.arange(21), constant)
    correlation = [abs(np.corrcoef(sensors[:, j], rul)[0, 1]) for j in moving]
    assert np.median(correlation) > 0.5  # wear shows in the sensors
    assert len(subset.test_rul) == 10 and 5 <= subset.test_rul.min() <= subset.test_rul.max() <= 145
    test_lives = np.array([(subset.test[:, 0] == u).sum() for u in subset.test_units()])
    assert np.all(test_lives + subset.test_rul >= 120)  # cut before failure, not after
    again = simulate_cmapss(tmp_path / "again", "FD001", seed=3, train_units=20, test_units=10)
    assert (again / "train_FD001.txt").read_bytes() == (folder / "train_FD001.txt").read_bytes()


def test_fd002_has_six_operating_conditions_that_move_every_sensor(tmp_path: Path) -> None:
    folder = simulate_cmapss(tmp_path / "sim", "FD002", seed=1, train_units=5, test_units=3)
    train = load_cmapss(folder, "FD002").train
    settings = np.column_stack([train[:, 2].round(), train[:, 3].round(2), train[:, 4]])
    conditions = {tuple(row) for row in settings + 0.0}  # + 0.0: no -0.0
    assert len(conditions) == 6 and (25.0, 0.62, 60.0) in conditions
    first = train[:, 2] < 1  # condition (0, 0, 100)
    assert abs(train[first, 5].std()) < 1e-9 < train[:, 5].std()  # s1: constant per condition


def test_the_cli_simulates_into_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMFORGE_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["data", "simulate", "cmapss", "--subset", "FD002",
                                      "--train-units", "3", "--test-units", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = tmp_path / "home" / "datasets" / "cmapss-sim"
    assert len(load_cmapss(folder, "FD002").test_rul) == 2
    result = CliRunner().invoke(app, ["data", "simulate", "cmapss", "--subset", "FD003"])
    assert result.exit_code != 0 and "FD001, FD002" in result.output


def test_constant_sensors_are_dropped_by_a_rule_fitted_on_training_rows(tmp_path: Path) -> None:
    subset = load_cmapss(_subset(tmp_path / "cmapss"))
    scaling = _fit(subset.train)
    # NASA's constant FD001 sensors, and s17 (htBleed: 392 or 391 in these five rows)
    dropped = set(scaling.sensors) ^ {f"s{i}" for i in range(1, 22)}
    assert dropped == {"s1", "s5", "s6", "s10", "s16", "s17", "s18", "s19"}
    features = scaling.transform(subset.test[:, 2:5], subset.test[:, 5:])
    assert features.shape == (5, 13)
    np.testing.assert_allclose(features.mean(0), 0, atol=1e-9)  # train rows = test rows here


def test_per_condition_normalisation_removes_the_operating_condition(tmp_path: Path) -> None:
    folder = simulate_cmapss(tmp_path / "sim", "FD002", seed=2, train_units=12, test_units=6)
    subset = load_cmapss(folder, "FD002")
    by_condition = _fit(subset.train, by_condition=True)
    overall = _fit(subset.train)
    assert len(by_condition.centres) == 6 and len(overall.centres) == 1
    assert len(by_condition.sensors) == 14  # the seven constant-per-condition ones dropped
    assert len(overall.sensors) == 21  # across conditions they move: kept
    test = by_condition.transform(subset.test[:, 2:5], subset.test[:, 5:])
    condition = by_condition.conditions(subset.test[:, 2:5])
    for c in range(6):  # each condition's test rows are centred near 0, none far off
        assert np.abs(test[condition == c].mean(0)).max() < 1.0
    # the condition explains most of a raw sensor's variance, and none once normalised
    raw = overall.transform(subset.test[:, 2:5], subset.test[:, 5:])
    raw = raw[:, overall.kept.index(by_condition.kept[0])]
    means = np.array([raw[condition == c].mean() for c in range(6)])
    assert means.std() > 0.5 > np.array([test[condition == c, 0].mean() for c in range(6)]).std()


def _fit(rows: np.ndarray, *, by_condition: bool = False) -> SensorScaling:
    """Scaling fitted on C-MAPSS rows (unit, cycle, 3 settings, 21 sensors)."""
    return SensorScaling.fit(rows[:, 2:5], rows[:, 5:], list(SENSORS), by_condition=by_condition,
                             decimals=CMAPSS_DECIMALS)  # fmt: skip

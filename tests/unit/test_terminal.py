"""Tables in an 80-column log (CI, `| tee`): every cell whole, as blocks when the table does not fit."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from domainflow.terminal import print_table

PATH = "/home/ci/builds/project/.domainflow/quarantine/flights-2013/JFK/rows-quarantined-by-validation.csv"
ROWS = [
    ("EWR", "120,835\n120,830\n5", "onnx_int8\n3.9x\n1.2x", "flight-delay-EWR\nv1",
     "[green]passed[/] vs baseline (HistGradientBoosting)\nchampion, challenger"),
    ("JFK", "111,279\n111,279\n0", "gradient_boosting", "flight-delay-JFK\nv2",
     "[yellow]rejected[/] vs champion v1: failed non_inferiority (non_inferiority_lower -0.0353, needs > -0.0100); "
     f"calibration (ece_difference_upper 0.0412, needs <= 0.0200)\nquarantined: {PATH}"),
]  # fmt: skip


def _summary() -> Table:
    table = Table(title="domainflow run", caption="models registered in MLflow at sqlite:////srv/mlflow/mlflow.db")
    for header in ("domain", "rows in\nkept\nquarantined", "served\nsize x\nspeed x", "model", "gate"):
        table.add_column(header)
    for row in ROWS:
        table.add_row(*row)
    return table


def _printed(width: int) -> str:
    """What a pipe gets: no terminal, so no colours and the width from COLUMNS (here `width`)."""
    out = io.StringIO()
    print_table(Console(file=out, width=width, force_terminal=False), _summary())
    return out.getvalue()


def _words(text: str) -> list[str]:
    return Console().render_str(text).plain.split()


def test_a_table_too_wide_for_80_columns_prints_every_cell_whole():
    printed = _printed(80)

    assert "…" not in printed
    tokens = set(printed.split())
    for row in ROWS:
        for cell in row:
            assert set(_words(cell)) <= tokens, cell
    # The rejected version's checks with their figures, word for word and in order.
    assert "failed non_inferiority (non_inferiority_lower -0.0353, needs > -0.0100)" in " ".join(printed.split())
    # Only a word longer than the line (the path) makes a line longer than 80.
    assert all(len(line) <= 80 for line in printed.splitlines() if PATH not in line)


def test_one_block_per_row_heads_each_with_its_first_cell():
    lines = _printed(80).splitlines()

    assert "EWR" in lines and "JFK" in lines
    block = lines[lines.index("JFK") :]
    assert block[1].split() == ["rows", "in", "/", "kept", "/", "quarantined", "111,279", "/", "111,279", "/", "0"]
    assert block[2].split() == ["served", "/", "size", "x", "/", "speed", "x", "gradient_boosting"]


def test_a_table_that_fits_stays_a_table():
    printed = _printed(400)

    assert "┃ domain" in printed and "…" not in printed
    assert "failed non_inferiority (non_inferiority_lower -0.0353, needs > -0.0100);" in printed

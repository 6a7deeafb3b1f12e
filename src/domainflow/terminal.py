"""Tables that read whole at any width: as a table when every cell fits on its line, else one block per row.

A rich table narrower than its cells squeezes its columns and cuts their words (`onnx_i…`); in an
80-column CI log or a `| tee` that loses the very figures a reader came for. So a table too wide
for the console is printed as blocks instead: the row's first cell as a heading, then each column's
header and cell, the cell wrapped at spaces and never cut (a path longer than the line stays whole).
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

INDENT = "  "
UNBOUNDED = 100_000  # a width to measure a table's widest natural layout


def print_table(console: Console, table: Table) -> None:
    unwrapped = console.measure(table, options=console.options.update_width(UNBOUNDED)).maximum
    if unwrapped <= console.width:
        console.print(table)
    else:
        console.print(table_blocks(table, console.width), soft_wrap=True)


def table_blocks(table: Table, width: int) -> Text:
    """The table as one block per row, each line at most `width` wide but for a word longer than the line."""
    first, *rest = table.columns
    headers = [_markup(column.header).split() for column in rest]
    labels = [" / ".join(line.plain for line in header) for header in headers]
    label_width = max(map(len, labels), default=0)
    value_width = max(20, width - len(INDENT) - label_width - 2)
    lines: list[Text] = [_wrapped(_markup(table.title), width)] if table.title else []
    for heading, *cells in zip(first.cells, *(column.cells for column in rest), strict=True):
        lines += [Text(), Text.assemble(_markup(heading), style="bold")]
        for label, header, cell in zip(labels, headers, cells, strict=True):
            for index, line in enumerate(_wrapped(_joined(_markup(cell), len(header)), value_width).split()):
                lines.append(Text.assemble(INDENT, (label if index == 0 else "").ljust(label_width), "  ", line))
                lines[-1].rstrip()
    if table.caption:
        lines += [Text(), _wrapped(_markup(table.caption), width)]
    return Text("\n").join(lines)


def _markup(renderable) -> Text:
    return renderable.copy() if isinstance(renderable, Text) else Text.from_markup(str(renderable))


def _joined(cell: Text, header_lines: int) -> Text:
    """Under a header of several lines ("rows in / kept"), the cell's lines read as one: "1,500 / 1,490"."""
    if header_lines < 2:
        return cell
    parts = cell.split()
    for part in parts:
        part.rstrip()
    return Text(" / ").join(parts)


def _wrapped(text: Text, width: int) -> Text:
    """Wrapped at spaces to `width`; a word longer than that (a path, a URI) stays whole on a line of its own."""
    text = text.copy()
    text.overflow = "ignore"  # the text's own overflow, not wrap()'s argument, which would turn wrapping off
    lines = text.wrap(Console(width=width), width)
    for line in lines:
        line.rstrip()
    return Text("\n").join(lines)

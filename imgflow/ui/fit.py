"""Tables that fit the terminal: whole values, columns dropped rather than cut.

A column marked `keep=0` (a run id, a count) is never cut; when a table is too wide, the
`shrink` columns give up their width first (a base URL ends in an ellipsis, a URL folds),
then the columns with the highest `keep` are left out, one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.table import Table
from rich.text import Text

NARROWEST = 12  # a shrinking column keeps at least this many characters
Cell = str | Text


@dataclass(frozen=True)
class Column:
    """One column: `keep` 0 is never left out, higher numbers are left out first."""

    header: str
    keep: int = 0
    shrink: bool = False
    overflow: Literal["ellipsis", "fold"] = "ellipsis"
    justify: Literal["left", "right"] = "left"


def fitted(
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    width: int,
    title: str | None = None,
    caption: str | None = None,
) -> Table:
    """The table of `rows` in at most `width` characters (when the kept columns fit)."""
    cells = [[c if isinstance(c, Text) else Text(c) for c in row] for row in rows]
    widths = [
        max([len(col.header), *(row[i].cell_len for row in cells)]) for i, col in enumerate(columns)
    ]
    shown = list(range(len(columns)))

    def least() -> int:  # the width with every shrinking column at its narrowest
        return 1 + sum(
            3 + (min(widths[i], NARROWEST) if columns[i].shrink else widths[i]) for i in shown
        )

    while least() > width and any(columns[i].keep for i in shown):
        shown.remove(max(shown, key=lambda i: columns[i].keep))
    excess = 1 + sum(3 + widths[i] for i in shown) - width
    spare = {i: max(widths[i] - NARROWEST, 0) for i in shown if columns[i].shrink}
    given = sum(spare.values())
    table = Table(title=title, caption=caption)
    for i in shown:
        column, size = columns[i], widths[i]
        if i in spare and excess > 0 and given:
            # the shrinking columns give up width in proportion to what they can spare
            size -= min(spare[i], -(-excess * spare[i] // given))
        table.add_column(
            column.header,
            width=size,
            no_wrap=column.overflow != "fold",
            overflow=column.overflow,
            justify=column.justify,
        )
    for row in cells:
        table.add_row(*(row[i] for i in shown))
    return table

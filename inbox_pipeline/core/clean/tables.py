"""Layout tables become a linear flow of divs; real data tables stay tables."""

from __future__ import annotations

import re


from .dom import Element, collapse, drop_tree, text_of

_SECTIONS = frozenset({"thead", "tbody", "tfoot"})
_TABLE_CHILDREN = frozenset({"caption", "colgroup", "col", "thead", "tbody", "tfoot", "tr"})
_CELL_BLOCKS = frozenset({"table", "div", "p", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "img"})
_LAYOUT_PARTS = frozenset({"td", "th", "caption", "tr", "tbody", "thead", "tfoot"})
_NUMERIC = re.compile(r"^[\s$€£¥%+\-−–.,:/()\d]*\d[\s$€£¥%+\-−–.,:/()\dkmbKMB]*$")


def _rows(table: Element) -> list[Element] | None:
    """The table's own rows, or None when its structure is not a plain table."""
    rows: list[Element] = []
    for child in table:
        if not isinstance(child.tag, str):
            continue
        if child.tag not in _TABLE_CHILDREN:
            return None
        if child.tag == "tr":
            rows.append(child)
        elif child.tag in _SECTIONS:
            for row in child:
                if isinstance(row.tag, str):
                    if row.tag != "tr":
                        return None
                    rows.append(row)
    return rows


def is_data_table(table: Element) -> bool:
    """A table of data: header cells, or a regular grid with numeric columns and no nesting."""
    if (table.get("role") or "").lower() == "presentation":
        return False
    if next(table.iterdescendants("table"), None) is not None:
        return False
    rows = _rows(table)
    if not rows:
        return False
    cells_per_row: list[list[Element]] = []
    for row in rows:
        cells = [c for c in row if isinstance(c.tag, str)]
        if any(c.tag not in ("td", "th") for c in cells):
            return False
        cells_per_row.append(cells)
    if any(cell.tag == "th" for cells in cells_per_row for cell in cells) or table.find("thead") is not None:
        return len(rows) >= 2 or table.find("caption") is not None
    widths = [sum(int(c.get("colspan", "1") or 1) if (c.get("colspan") or "1").isdigit() else 1 for c in cells) for cells in cells_per_row]
    if len(rows) < 3 or max(widths) < 2 or len(set(widths)) > 1:
        return False
    numeric_rows = 0
    for cells in cells_per_row:
        texts = [collapse(text_of(c)) for c in cells]
        if any(len(t) > 80 for t in texts):
            return False
        if any(any(el.tag in _CELL_BLOCKS for el in c.iterdescendants()) for c in cells):
            return False
        if any(_NUMERIC.match(t) for t in texts if t):
            numeric_rows += 1
    return numeric_rows * 2 >= len(rows)


def linearise_tables(root: Element) -> int:
    """Unwrap every layout table under ``root``; return how many data tables were kept."""
    tables = list(root.iter("table"))
    if not tables:
        return 0
    data = {table for table in tables if is_data_table(table)}
    if len(data) == len(tables):
        return len(data)
    # A table part belongs to its nearest table; it is unwrapped when that table is a layout
    # table. Nearest tables are looked up on the untouched tree, then everything is renamed.
    parts = [
        (el, next(el.iterancestors("table"), None))
        for el in root.iter(*_LAYOUT_PARTS, "colgroup", "col")
    ]
    for el, table in parts:
        if table is None or table in data:
            continue
        if el.tag in _LAYOUT_PARTS:
            el.tag = "div"
            el.attrib.pop("colspan", None)
            el.attrib.pop("rowspan", None)
        else:
            drop_tree(el)  # colgroup, col
    for table in tables:
        if table not in data:
            table.tag = "div"
    return len(data)

"""The markdown pieces `report.md`'s sections share."""


def number(value, digits=3):
    """`value` to `digits` decimals, or n/a."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(header, rows):
    """A markdown table's lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines

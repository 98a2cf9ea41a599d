"""Markdown tables: what every benchmark prints, and what `run.py` copies
into RESULTS.md unchanged (so the file holds exactly what was printed)."""


def markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)

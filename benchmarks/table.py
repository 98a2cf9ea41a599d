"""Markdown tables: what every benchmark prints, and what `run.py` copies
into RESULTS.md unchanged (so the file holds exactly what was printed)."""

import os


def markdown(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def replace_block(text, begin, end, block):
    """`text` with the part between the `begin` and `end` markers replaced by
    `block`, or `block` (marked) inserted after the title line."""
    marked = f"{begin}\n{block}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + marked + rest.split(end, 1)[1]
    title, _, rest = text.partition("\n")
    return f"{title}\n\n{marked}\n{rest}"


def write_block(path, begin, end, block):
    """Replaces the marked block of the file at `path`, atomically: the rest
    of the file (hand-written readings) stays as it is."""
    with open(path) as handle:
        text = handle.read()
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write(replace_block(text, begin, end, block))
    os.replace(temporary, path)

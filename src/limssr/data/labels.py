"""Parsers for the released label files of FS1000, Fis-V and RG (README, "Real data").

Every parser returns `[(name, {label: value})]` in file order and refuses malformed input with the
file and line: too few fields, a non-numeric or negative value, a duplicate name, text that is not
UTF-8. Windows line endings and a missing final newline are fine. Header lines are detected (a line
whose first score field is not a number); `skip_first_line=True` instead always drops line 1, which
reproduces MCMoE/LIMSSR (they drop the first Fis-V sample of each split, which is not a header).
"""

from __future__ import annotations

import math
from pathlib import Path

from limssr.data.samples import DataError, read_label_text

FS1000_COLUMNS = ("TES", "PCS", "SS", "TR", "PE", "CO", "IN")  # then `factor`
RG_APPARATUS = ("Ball", "Clubs", "Hoop", "Ribbon")


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    text = read_label_text(path)
    return [(i, line.split()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _rows(path: Path, min_fields: int, skip_first_line: bool) -> list[tuple[int, list[str]]]:
    rows = _lines(path)
    if skip_first_line:
        rows = rows[1:]
    elif rows and (len(rows[0][1]) < 2 or not _is_number(rows[0][1][1])):
        rows = rows[1:]  # a header: its second field is a column name, not a score
    for lineno, fields in rows:
        if len(fields) < min_fields:
            raise DataError(f"{path}:{lineno}: expected at least {min_fields} fields, got {len(fields)}: "
                            f"{' '.join(fields)!r}")
    if not rows:
        raise DataError(f"{path}: no samples (empty split)")
    return rows


def _value(path: Path, lineno: int, name: str, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{lineno}: {column} {text!r} of '{name}' is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise DataError(f"{path}:{lineno}: {column} {text!r} of '{name}' must be finite and non-negative")
    return value


def _unique(path: Path, rows: list[tuple[str, dict]], linenos: list[int]) -> list[tuple[str, dict]]:
    seen: dict[str, int] = {}
    for (name, _), lineno in zip(rows, linenos):
        if name in seen:
            raise DataError(f"{path}:{lineno}: duplicate name '{name}' (first on line {seen[name]})")
        seen[name] = lineno
    return rows


def parse_fisv(path: str | Path, skip_first_line: bool = False) -> list[tuple[str, dict[str, float]]]:
    """Fis-V `id TES PCS deductions` (no header in the public files)."""
    path = Path(path)
    rows = _rows(path, 3, skip_first_line)
    out = [(f[0], {"TES": _value(path, n, f[0], "TES", f[1]), "PCS": _value(path, n, f[0], "PCS", f[2])})
           for n, f in rows]
    return _unique(path, out, [n for n, _ in rows])


def parse_rg(path: str | Path, apparatus: str = "all",
             skip_first_line: bool = False) -> list[tuple[str, dict[str, float]]]:
    """RG `name Difficulty Execution Total Penalty length`, rows of one apparatus (or all)."""
    path = Path(path)
    if apparatus != "all" and apparatus not in RG_APPARATUS:
        raise DataError(f"unknown RG apparatus '{apparatus}'; choose one of {', '.join(RG_APPARATUS)} or all")
    rows = _rows(path, 4, skip_first_line)
    out, linenos = [], []
    for n, f in rows:
        if apparatus != "all" and f[0].split("_")[0] != apparatus:
            continue
        out.append((f[0], {"Difficulty": _value(path, n, f[0], "Difficulty_Score", f[1]),
                           "Execution": _value(path, n, f[0], "Execution_Score", f[2]),
                           "Total": _value(path, n, f[0], "Total_Score", f[3])}))
        linenos.append(n)
    if not out:
        raise DataError(f"{path}: no rows for apparatus '{apparatus}' (empty split)")
    return _unique(path, out, linenos)


def parse_fs1000(path: str | Path, skip_first_line: bool = False) -> list[tuple[str, dict[str, float]]]:
    """FS1000 `name TES PCS SS TR PE CO IN factor`; the PCS label is PCS / factor, as every loader uses."""
    path = Path(path)
    rows = _rows(path, 9, skip_first_line)
    out = []
    for n, f in rows:
        values = {c: _value(path, n, f[0], c, f[i + 1]) for i, c in enumerate(FS1000_COLUMNS)}
        factor = _value(path, n, f[0], "factor", f[8])
        if factor == 0:
            raise DataError(f"{path}:{n}: factor of '{f[0]}' is 0 (PCS is divided by it)")
        values["PCS"] /= factor
        values["factor"] = factor
        out.append((f[0], values))
    return _unique(path, out, [n for n, _ in rows])

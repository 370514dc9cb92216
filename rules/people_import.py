"""An HR export (CSV: email, name, title, manager_email) as a rules file's ``people``.

Pure: bytes in, people out. Every mistake in the file is reported as ``file:line: message``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rules.draft import PLACEHOLDER, DraftPerson, make_handles

COLUMNS = ("email", "name", "title", "manager_email")


class CsvProblem(ValueError):
    """A mistake in the CSV file; the message is ``file:line: what is wrong``."""


@dataclass(frozen=True)
class HrRow:
    line: int
    email: str
    name: str
    title: str
    manager_email: str


def read_hr_csv(raw: bytes, source: str) -> list[HrRow]:
    """The rows of an HR export; CsvProblem on the first mistake, with its line."""
    try:
        data = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise CsvProblem(f"{source}:{line}: the file is not UTF-8 text "
                         f"(byte 0x{raw[error.start]:02x}); save it as UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(data, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise CsvProblem(f"{source}:1: the file is empty; expected a header line: "
                             f"{','.join(COLUMNS)}")
        names = [cell.strip().lower() for cell in header]
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise CsvProblem(f"{source}:1: missing column(s) {', '.join(missing)} "
                             f"(the header must name: {', '.join(COLUMNS)}; it has: "
                             f"{', '.join(n for n in names if n) or 'nothing'})")
        where = {c: names.index(c) for c in COLUMNS}
        rows: list[HrRow] = []
        seen: dict[str, int] = {}
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # blank lines are harmless
            if len(cells) < len(names):
                raise CsvProblem(f"{source}:{line}: {len(cells)} column(s), the header has "
                                 f"{len(names)}")
            value = {c: cells[i].strip() for c, i in where.items()}
            email = value["email"].lower()
            if "@" not in email:
                shown = value["email"] or "nothing"
                raise CsvProblem(f"{source}:{line}: email must be an address, not {shown!r}")
            if email in seen:
                raise CsvProblem(f"{source}:{line}: {email} is listed twice (first on line "
                                 f"{seen[email]})")
            seen[email] = line
            rows.append(HrRow(line, email, value["name"], value["title"],
                              value["manager_email"].lower()))
    except csv.Error as error:
        raise CsvProblem(f"{source}:{reader.line_num}: not valid CSV ({error})") from None
    return rows


def parse_levels(specs: Iterable[str]) -> dict[str, str]:
    """``"Engineer=engineer,Engineering Manager=manager"`` -> {title (case-folded): level}."""
    levels: dict[str, str] = {}
    for spec in specs:
        for pair in spec.split(","):
            if not pair.strip():
                continue
            title, sep, level = pair.partition("=")
            if not sep or not title.strip() or not level.strip():
                raise ValueError(f"--levels takes title=level pairs separated by commas, "
                                 f"like 'Engineer=engineer' (got {pair.strip()!r})")
            levels[title.strip().casefold()] = level.strip()
    return levels


def people_from_hr(
    rows: Sequence[HrRow], resolved: Mapping[str, str], levels: Mapping[str, str]
) -> list[DraftPerson]:
    """People for the rows whose email was resolved to a Jira id (others are left out)."""
    kept = [row for row in rows if row.email in resolved]
    handles = make_handles([(row.email, row.name, row.email) for row in kept])
    people = []
    for row in kept:
        notes = []
        if row.title:
            notes.append(f"title: {row.title}")
        level = levels.get(row.title.casefold(), PLACEHOLDER)
        if level == PLACEHOLDER:
            notes.append("title not in --levels")
        boss = handles.get(row.manager_email) if row.manager_email else None
        if row.manager_email and boss is None:
            notes.append(f"manager {row.manager_email} not found")
        people.append(DraftPerson(handle=handles[row.email], jira=resolved[row.email],
                                  name=row.name or handles[row.email], level=level,
                                  reports_to=boss, note="; ".join(notes)))
    return people

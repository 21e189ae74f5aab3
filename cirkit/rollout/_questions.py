"""Questions in: JSONL, CSV or parquet rows with a question, optional id, answer and source."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorders import RecordersError

__all__ = ["Question", "load_questions"]

_QUESTION = ("question", "prompt", "problem", "query")
_ANSWER = ("ground_truth", "answer", "gold", "target")
_ID = ("question_id", "id", "uid")


@dataclass(slots=True, frozen=True)
class Question:
    id: str
    question: str
    ground_truth: Any = None
    source: str = ""


def _pick(row: dict[str, Any], names: tuple[str, ...]) -> Any:
    for n in names:
        if row.get(n) not in (None, ""):
            return row[n]
    return None


def _rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = []
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise RecordersError(f"{path}:{n}: not JSON ({e.msg})",
                                         hint="one JSON object per line") from None
                if not isinstance(obj, dict):
                    raise RecordersError(f"{path}:{n}: expected a JSON object")
                rows.append(obj)
        return rows
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            return list(csv.DictReader(f))
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_table(path).to_pylist())
    raise RecordersError(f"{path}: unknown question file type {suffix!r}",
                         hint="use .jsonl, .csv or .parquet")


def load_questions(path: str | Path) -> list[Question]:
    """Every question of the file, in file order. A row without an id gets a stable one (a
    hash of its text), so sample seeds and trajectory ids never depend on row order."""
    path = Path(path)
    if not path.is_file():
        raise RecordersError(f"no question file at {path}")
    out: list[Question] = []
    seen: set[str] = set()
    for n, row in enumerate(_rows(path), start=1):
        q = _pick(row, _QUESTION)
        if not isinstance(q, str) or not q.strip():
            raise RecordersError(f"{path}: row {n} has no question",
                                 hint=f"give one of the fields {', '.join(_QUESTION)}")
        qid = _pick(row, _ID)
        qid = str(qid) if qid is not None else "q-" + hashlib.sha256(q.encode()).hexdigest()[:16]
        if qid in seen:
            raise RecordersError(f"{path}: row {n} repeats question id {qid!r}",
                                 hint="ids must be unique; drop duplicate rows")
        seen.add(qid)
        source = row.get("source") or row.get("data_source") or path.stem
        out.append(Question(qid, q, _pick(row, _ANSWER), str(source)))
    if not out:
        raise RecordersError(f"{path} holds no question")
    return out

"""Import and export in the exchange format hotline offices keep: JSONL, CSV (similar questions joined by
`|`) and Excel .xlsx. A file is validated whole before anything is stored: one bad row refuses the file."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from kb import entries as kbe
from kb.errors import InvalidInput

FIELDS = ("id", "question", "similar_questions", "answer", "policy_basis", "unit", "category", "tags",
          "effective_from", "effective_to")
LIST_FIELDS = ("similar_questions", "tags")
FORMATS = ("jsonl", "csv", "xlsx")
FIELD_NAMES = {"question": "标准问", "answer": "答案", "unit": "承办单位", "category": "分类",
               "effective_from": "生效日期", "effective_to": "失效日期", "similar_questions": "相似问",
               "tags": "标签", "policy_basis": "政策依据", "id": "编号"}


def detect_format(filename: str, content: bytes) -> str:
    name = filename.lower()
    for fmt in FORMATS:
        if name.endswith("." + fmt):
            return fmt
    if name.endswith(".json"):
        return "jsonl"
    if content[:2] == b"PK":
        return "xlsx"
    return "jsonl" if content.lstrip()[:1] in (b"{", b"[") else "csv"


def _split_list(v: Any) -> Any:
    if isinstance(v, str):
        return [p.strip() for p in v.split("|") if p.strip()]
    return v


def _read_jsonl(content: bytes) -> list[tuple[int, dict[str, Any]]]:
    text = content.decode("utf-8-sig")
    stripped = text.strip()
    if stripped.startswith("["):  # a JSON array is accepted as well
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"文件不是合法的 JSON：第 {e.lineno} 行 {e.msg}") from e
        return [(i, r) for i, r in enumerate(data, start=1)]
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((i, json.loads(line)))
        except json.JSONDecodeError as e:
            raise InvalidInput(f"第 {i} 行不是合法的 JSON：{e.msg}", row=i) from e
    return rows


def _read_csv(content: bytes) -> list[tuple[int, dict[str, Any]]]:
    text = content.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"question", "answer"} - set(reader.fieldnames or [])
    if missing:
        raise InvalidInput(f"CSV 表头缺少列：{', '.join(sorted(missing))}（应为 {','.join(FIELDS)}）")
    return [(i, {k: _split_list(v) if k in LIST_FIELDS else v for k, v in row.items() if k})
            for i, row in enumerate(reader, start=2)]


def _read_xlsx(content: bytes) -> list[tuple[int, dict[str, Any]]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a damaged file
        raise InvalidInput(f"无法读取 Excel 文件：{e.__class__.__name__}") from e
    ws = wb.active
    rows_iter = ws.iter_rows(values_only=True)
    header = [str(h).strip() if h is not None else "" for h in next(rows_iter, ())]
    if not {"question", "answer"} <= set(header):
        raise InvalidInput(f"Excel 第 1 行须为表头：{','.join(FIELDS)}")
    out = []
    for i, values in enumerate(rows_iter, start=2):
        if values is None or all(v is None or str(v).strip() == "" for v in values):
            continue
        row: dict[str, Any] = {}
        for k, v in zip(header, values, strict=False):
            if not k:
                continue
            if isinstance(v, datetime):
                v = v.date()
            row[k] = _split_list(v) if k in LIST_FIELDS else v
        out.append((i, row))
    return out


def parse(content: bytes, filename: str = "", fmt: str | None = None) -> list[tuple[str | None, kbe.EntryData]]:
    """Every row validated; raises InvalidInput naming the row and the field of the first problem."""
    fmt = fmt or detect_format(filename, content)
    if fmt not in FORMATS:
        raise InvalidInput(f"不支持的格式 {fmt}；可用：{', '.join(FORMATS)}")
    try:
        rows = {"jsonl": _read_jsonl, "csv": _read_csv, "xlsx": _read_xlsx}[fmt](content)
    except UnicodeDecodeError as e:
        raise InvalidInput("文件不是 UTF-8 编码的文本") from e
    if not rows:
        raise InvalidInput("文件中没有任何知识点")
    seen: dict[str, int] = {}
    out: list[tuple[str | None, kbe.EntryData]] = []
    for line, raw in rows:
        if not isinstance(raw, dict):
            raise InvalidInput(f"第 {line} 行：应为一个对象", row=line)
        row = {k: (None if isinstance(v, str) and not v.strip() and k in ("effective_from", "effective_to") else v)
               for k, v in raw.items()}
        for k in ("effective_from", "effective_to"):
            if isinstance(row.get(k), date | datetime):
                row[k] = row[k].isoformat()[:10]
        entry_id = str(row.get("id") or "").strip() or None
        if entry_id:
            if entry_id in seen:
                raise InvalidInput(f"第 {line} 行：编号 id={entry_id} 与第 {seen[entry_id]} 行重复",
                                   row=line, field="id")
            seen[entry_id] = line
        try:
            data = kbe.EntryData.model_validate({k: v for k, v in row.items() if k in FIELDS and k != "id"})
        except ValidationError as e:
            err = e.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else ""
            what = FIELD_NAMES.get(field, field)
            msg = "必填且不能为空" if err["type"] in ("missing", "string_too_short") else err["msg"]
            raise InvalidInput(f"第 {line} 行：字段 {field}（{what}）{msg}", row=line, field=field) from e
        out.append((entry_id, data))
    return out


def import_rows(
    s: Session, actor: kbe.Actor, rows: Iterable[tuple[str | None, kbe.EntryData]], now: datetime, publish: bool
) -> dict[str, int]:
    """New ids become entries; known ids get a new version. The caller commits once for the whole file."""
    created = updated = published = 0
    for entry_id, data in rows:
        if entry_id and s.get(kbe.Entry, entry_id) is not None:
            v = kbe.add_version(s, actor, entry_id, data, now, note="导入更新")
            updated += 1
        else:
            v = kbe.create_entry(s, actor, data, now, entry_id=entry_id, note="导入")
            created += 1
        if publish:
            kbe.publish(s, actor, v.entry_id, v.version, now)
            published += 1
    return {"imported": created + updated, "created": created, "updated": updated, "published": published}


def export_rows(versions: Iterable[kbe.EntryVersion]) -> list[dict[str, Any]]:
    return [
        {"id": v.entry_id, **{f: getattr(v, f) for f in FIELDS if f != "id"}}
        | {"effective_from": v.effective_from.isoformat() if v.effective_from else None,
           "effective_to": v.effective_to.isoformat() if v.effective_to else None}
        for v in versions
    ]


def dump(rows: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    flat = [{k: "|".join(v) if isinstance(v, list) else ("" if v is None else v) for k, v in r.items()} for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(FIELDS))
        w.writeheader()
        w.writerows(flat)
        return buf.getvalue().encode("utf-8-sig")  # BOM so that Excel opens Chinese CSV correctly
    if fmt == "xlsx":
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.title = "知识库"
        ws.append(list(FIELDS))
        for r in flat:
            ws.append([r[f] for f in FIELDS])
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()
    raise InvalidInput(f"不支持的格式 {fmt}；可用：{', '.join(FORMATS)}")

"""Import / export round trips, and files refused whole with the row and field named."""

import json

import pytest
from sqlalchemy import func, select

from kb import entries as kbe
from kb import exchange
from kb.db import transaction
from kb.errors import InvalidInput
from kb.models import Entry

ADMIN = kbe.Actor("管理员", "admin")
ROWS = [
    {"id": "E001", "question": "如何申请低保？", "similar_questions": ["低保怎么办", "吃低保要什么条件"],
     "answer": "向街道社区事务受理服务中心申请。", "policy_basis": "《社会救助暂行办法》", "unit": "区民政局",
     "category": "民政", "tags": ["低保"], "effective_from": "2026-01-01", "effective_to": None},
    {"id": "E002", "question": "公积金怎么提取？", "similar_questions": ["租房提取公积金"], "answer": "通过一网通办申请。",
     "policy_basis": "《住房公积金管理条例》", "unit": "区住房公积金管理中心", "category": "公积金", "tags": [],
     "effective_from": None, "effective_to": None},
]


def jsonl(rows) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


@pytest.mark.parametrize("fmt", exchange.FORMATS)
def test_round_trip_every_format(factory, now, fmt):
    with transaction(factory) as s:
        result = exchange.import_rows(s, ADMIN, exchange.parse(jsonl(ROWS), "kb.jsonl"), now, publish=True)
        assert result == {"imported": 2, "created": 2, "updated": 0, "published": 2}
    with factory() as s:
        blob = exchange.dump(exchange.export_rows(kbe.searchable_versions(s)), fmt)
    back = exchange.parse(blob, f"kb.{fmt}")
    assert [i for i, _ in back] == ["E001", "E002"]
    assert back[0][1].similar_questions == ROWS[0]["similar_questions"]
    assert str(back[0][1].effective_from) == "2026-01-01"
    assert back[1][1].tags == []


def test_reimport_of_a_known_id_adds_a_version(factory, now):
    with transaction(factory) as s:
        exchange.import_rows(s, ADMIN, exchange.parse(jsonl(ROWS), "a.jsonl"), now, publish=True)
    changed = [dict(ROWS[0], answer="更新后的答案。")]
    with transaction(factory) as s:
        r = exchange.import_rows(s, ADMIN, exchange.parse(jsonl(changed), "b.jsonl"), now, publish=True)
        assert r["updated"] == 1
        assert kbe.get_entry(s, "E001").published_version == 2


@pytest.mark.parametrize(
    "mutate,fragment",
    [
        (lambda r: r[1].pop("question"), "第 2 行：字段 question"),
        (lambda r: r[1].update(answer="  "), "第 2 行：字段 answer"),
        (lambda r: r[1].update(effective_from="2026-02-30"), "第 2 行：字段 effective_from"),
        (lambda r: r[1].update(id="E001"), "第 2 行：编号 id=E001 与第 1 行重复"),
    ],
)
def test_a_bad_row_refuses_the_whole_file(factory, now, mutate, fragment):
    rows = [dict(r) for r in ROWS]
    mutate(rows)
    with pytest.raises(InvalidInput, match=fragment):
        with transaction(factory) as s:
            exchange.import_rows(s, ADMIN, exchange.parse(jsonl(rows), "bad.jsonl"), now, publish=True)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 0


def test_csv_errors_name_the_row(now):
    content = "id,question,answer,unit,category\nE1,问题,答案,区民政局,民政\nE2,,答案,区民政局,民政\n".encode()
    with pytest.raises(InvalidInput, match="第 3 行：字段 question"):
        exchange.parse(content, "x.csv")


def test_unreadable_files(now):
    with pytest.raises(InvalidInput, match="Excel"):
        exchange.parse(b"PK\x03\x04garbage", "x.xlsx")
    with pytest.raises(InvalidInput, match="第 1 行不是合法的 JSON"):
        exchange.parse(b"{oops\n", "x.jsonl")
    with pytest.raises(InvalidInput, match="UTF-8"):
        exchange.parse("问题".encode("gbk") + b"\xff", "x.csv")
    with pytest.raises(InvalidInput, match="没有任何知识点"):
        exchange.parse(b"\n\n", "x.jsonl")

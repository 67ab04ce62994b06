"""Maintenance through HTTP: roles, review flow, diffs, import/export, synonyms, corrections, notices."""

import io
import json

import pytest
from openpyxl import load_workbook

from tests.api.conftest import admin, make_token, wait_for

ENTRY = {"question": "老年人助餐服务点在哪里？", "similar_questions": ["社区食堂在哪", "老人吃饭有补贴的地方"],
         "answer": "可在街道社区事务受理服务中心或“一网通办”查询本街道的社区长者食堂和助餐点。", "policy_basis": "《上海市养老服务条例》",
         "unit": "区民政局", "category": "民政", "tags": ["养老"]}


def test_unit_review_flow_roles_and_diff(client):
    mz = make_token(client, "unit", "区民政局")
    rs = make_token(client, "unit", "区人力资源和社会保障局")
    reviewer = make_token(client, "reviewer")
    r = client.post("/api/v1/kb/entries", json={"id": "MZX01", **ENTRY}, headers=mz)
    assert r.status_code == 201 and r.json()["current"]["status"] == "draft"
    # another unit may not touch it
    r = client.post("/api/v1/kb/entries/MZX01/versions", json=ENTRY, headers=rs)
    assert r.status_code == 403 and "区民政局" in r.json()["detail"]
    # a unit may not publish, nor skip review
    assert client.post("/api/v1/kb/entries/MZX01/versions/1/publish", headers=mz).status_code in (403, 409)
    assert client.post("/api/v1/kb/entries/MZX01/versions/1/submit", headers=mz).status_code == 200
    assert client.post("/api/v1/kb/entries/MZX01/versions/1/submit", headers=mz).status_code == 409
    assert client.post("/api/v1/kb/entries/MZX01/versions/1/publish", headers=reviewer).status_code == 200
    changed = dict(ENTRY, answer=ENTRY["answer"] + "具体以最新公布为准。")
    assert client.post("/api/v1/kb/entries/MZX01/versions", json=changed, headers=mz).status_code == 201
    d = client.get("/api/v1/kb/entries/MZX01/diff", params={"from": 1, "to": 2}).json()
    assert [c["field"] for c in d["changes"]] == ["answer"]
    hist = client.get("/api/v1/kb/entries/MZX01/history").json()
    assert [h["action"] for h in hist] == ["create_version", "in_review", "published", "create_version"]
    e = client.get("/api/v1/kb/entries/MZX01").json()
    assert e["published_version"] == 1 and e["latest_version"] == 2 and e["current"]["version"] == 1


def test_errors_are_clear_4xx(client):
    assert client.get("/api/v1/kb/entries/NOPE").status_code == 404
    assert client.get("/api/v1/kb/entries/RX001/versions/99").status_code == 404
    assert client.post("/api/v1/kb/entries", json=ENTRY).status_code == 401
    assert client.post("/api/v1/kb/entries", json=ENTRY, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/api/v1/kb/entries", json={**ENTRY, "question": ""}, headers=admin()).status_code == 422
    assert client.post("/api/v1/kb/entries", json={**ENTRY, "effective_from": "2026-13-01"},
                       headers=admin()).status_code == 422
    assert client.post("/api/v1/kb/entries/RX001/rollback", json={"version": 1}, headers=admin()).status_code == 409
    op = make_token(client, "operator")
    assert client.post("/api/v1/kb/entries", json=ENTRY, headers=op).status_code == 403
    assert client.post("/api/v1/kb/entries/RX001/retire", json={}, headers=op).status_code == 403


def _upload(client, name, content, publish=True, headers=None):
    return client.post("/api/v1/kb/import", params={"publish": publish}, files={"file": (name, content)},
                       headers=admin() if headers is None else headers)


def test_import_publishes_and_bad_files_store_nothing(client):
    rows = [{"id": "IMP001", "question": "如何办理居住证签注？", "similar_questions": ["居住证到期续签"],
             "answer": "居住证每年签注一次，可在社区事务受理服务中心或“一网通办”办理。", "policy_basis": "《居住证暂行条例》",
             "unit": "区公安分局", "category": "户籍", "tags": []}]
    good = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    r = _upload(client, "kb.jsonl", good)
    assert r.status_code == 200 and r.json()["imported"] == 1 and r.json()["published"] == 1
    total = client.get("/api/v1/kb/entries", params={"limit": 1}).json()["total"]
    bad = good + json.dumps({"id": "IMP002", "question": "缺答案"}, ensure_ascii=False).encode() + b"\n"
    r = _upload(client, "kb.jsonl", bad)
    assert r.status_code == 422 and "第 2 行" in r.json()["detail"] and "answer" in r.json()["detail"]
    assert client.get("/api/v1/kb/entries", params={"limit": 1}).json()["total"] == total
    assert client.get("/api/v1/kb/entries/IMP002").status_code == 404
    assert _upload(client, "x.xlsx", b"PK\x03\x04broken").status_code == 422
    assert _upload(client, "kb.jsonl", good, headers=make_token(client, "reviewer")).status_code == 403
    assert _upload(client, "kb.jsonl", good, headers={}).status_code == 401


def test_export_formats(client):
    r = client.get("/api/v1/kb/export", params={"format": "jsonl"})
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert {"id", "question", "similar_questions", "answer", "policy_basis", "unit", "category"} <= set(lines[0])
    csv_text = client.get("/api/v1/kb/export", params={"format": "csv"}).content.decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("id,question,similar_questions")
    wb = load_workbook(io.BytesIO(client.get("/api/v1/kb/export", params={"format": "xlsx"}).content))
    assert wb.active.max_row == len(lines) + 1
    assert client.get("/api/v1/kb/export", params={"format": "pdf"}).status_code == 422


def test_synonyms_are_editable_and_used_by_search(client):
    q = "咨询一下社区长者饭堂的位置"
    before = client.get("/api/v1/kb/synonyms").json()
    r = client.post("/api/v1/kb/synonyms", json={"term": "长者饭堂", "canonical": "助餐服务点"}, headers=admin())
    assert r.status_code == 201
    assert len(client.get("/api/v1/kb/synonyms").json()) == len(before) + 1
    assert client.post("/api/v1/kb/synonyms", json={"term": "长者饭堂", "canonical": "x"},
                       headers=admin()).status_code == 409
    assert client.post("/api/v1/kb/synonyms", json={"term": "甲", "canonical": "甲"}, headers=admin()).status_code == 422
    unit = make_token(client, "unit", "区民政局")
    assert client.post("/api/v1/kb/synonyms", json={"term": "a", "canonical": "b"}, headers=unit).status_code == 403
    assert client.delete(f"/api/v1/kb/synonyms/{r.json()['id']}", headers=admin()).status_code == 204
    assert client.delete("/api/v1/kb/synonyms/999999", headers=admin()).status_code == 404
    assert client.post("/api/v1/kb/search", json={"query": q}).status_code == 200


def test_corrections_from_citizens_and_resolution(client):
    r = client.post("/api/v1/kb/corrections", json={"entry_id": "RX008", "comment": "这个时限已经过时了", "channel": "wechat"})
    assert r.status_code == 201
    gap = r.json()
    assert gap["kind"] == "correction" and gap["entry_version"] >= 1 and gap["unit"]
    assert client.post("/api/v1/kb/corrections", json={"entry_id": "NOPE", "comment": "x"}).status_code == 404
    assert client.post("/api/v1/kb/corrections", json={"entry_id": "RX008", "comment": ""}).status_code == 422
    listed = client.get("/api/v1/kb/gaps", params={"kind": "correction", "status": "open"}, headers=admin()).json()
    assert gap["id"] in [g["id"] for g in listed]
    assert client.get("/api/v1/kb/gaps", params={"kind": "bogus"}, headers=admin()).status_code == 422
    assert client.get("/api/v1/kb/gaps", params={"recurring": "maybe"}, headers=admin()).status_code == 422
    recurring = client.get("/api/v1/kb/gaps", params={"recurring": "true"}, headers=admin())
    assert recurring.status_code == 200 and all(g["recurs_gap_id"] for g in recurring.json())
    assert client.get("/api/v1/kb/gaps").status_code == 401
    # resolving with the very version that was reported is refused
    r = client.post(f"/api/v1/kb/gaps/{gap['id']}/resolve",
                    json={"entry_id": "RX008", "version": gap["entry_version"]}, headers=admin())
    assert r.status_code == 409


def test_none_of_the_suggestions_opens_a_missing_item_for_the_shown_entrys_unit(client):
    """A near miss the engine took for answerable: the citizen's 都不是 still reaches the KB's owners."""
    q = "公积金贷款能不能用来买车位"
    r = client.post("/api/v1/kb/missing", json={"question": q, "shown": ["GJJ007", "GJJ008"], "channel": "wechat"})
    assert r.status_code == 201, r.text
    gap = r.json()
    assert gap["kind"] == "missing" and gap["status"] == "open" and gap["question"] == q
    assert gap["unit"] == "区住房公积金管理中心" and gap["channel"] == "wechat"
    assert gap["due_date"] > gap["created_at"][:10]
    again = client.post("/api/v1/kb/missing", json={"question": "用公积金贷款买车位可以吗", "shown": ["GJJ007"]})
    assert again.status_code == 201 and again.json()["id"] == gap["id"] and again.json()["count"] == 2
    reports = client.get(f"/api/v1/kb/gaps/{gap['id']}", headers=admin()).json()["reports"]
    assert "GJJ007" in reports[0]["text"] and "都不是" in reports[0]["text"] and q in reports[0]["text"]
    # the clerk of that unit sees it among its own items
    unit = make_token(client, "unit", "区住房公积金管理中心")
    assert gap["id"] in [g["id"] for g in client.get("/api/v1/kb/gaps", headers=unit).json()]
    # nothing shown (a typed question the bot could not place) goes to the hotline office
    bare = client.post("/api/v1/kb/missing", json={"question": "社区食堂老人助餐补贴怎么领"}).json()
    assert bare["unit"] == "区12345热线办"


def test_a_missing_item_that_comes_back_after_resolution_counts_in_the_unit_report(client):
    """A 查无 item repeating a resolved one means the published answer is not being found: the office sees how
    often per unit in the 通报 (查无复发数)."""
    q = "医保个人账户里的钱能给住院的外婆付押金吗"
    first = client.post("/api/v1/kb/missing", json={"question": q, "shown": ["YB012"], "channel": "web"}).json()
    unit = first["unit"]
    r = client.post(f"/api/v1/kb/gaps/{first['id']}/resolve", json={"entry_id": "YB012", "version": 1}, headers=admin())
    assert r.status_code == 200, r.text
    again = client.post("/api/v1/kb/missing", json={"question": q, "shown": ["YB012"], "channel": "web"}).json()
    assert again["id"] != first["id"] and again["recurs_gap_id"] == first["id"]
    period = {"start": first["created_at"][:10], "end": again["due_date"]}
    rows = {u["unit"]: u for u in client.get("/api/v1/reports/units", params=period, headers=admin()).json()["units"]}
    assert rows[unit]["kb_recurring"] >= 1
    csv_text = client.get("/api/v1/reports/units/export", params={**period, "format": "csv"},
                          headers=admin()).content.decode("utf-8-sig")
    assert "查无复发数" in csv_text.splitlines()[0]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [({"question": "车位", "shown": ["GJJ007"]}, 422, "太短"),
     ({"question": "  ", "shown": []}, 422, "太短"),
     ({"question": "公积金贷款能不能用来买车位", "shown": ["NOPE999"]}, 404, "NOPE999"),
     ({"question": "公积金贷款能不能用来买车位", "shown": ["GJJ007"] * 11}, 422, "shown"),
     ({"question": "公积金贷款能不能用来买车位", "channel": "fax"}, 422, "channel")],
)
def test_bad_missing_reports_are_clear_4xx_and_store_nothing(client, body, status, words):
    before = client.get("/api/v1/kb/gaps", params={"kind": "missing"}, headers=admin()).json()
    r = client.post("/api/v1/kb/missing", json=body)
    assert r.status_code == status and words in json.dumps(r.json(), ensure_ascii=False)
    assert client.get("/api/v1/kb/gaps", params={"kind": "missing"}, headers=admin()).json() == before


def test_policy_notice_lists_affected_entries(client):
    r = client.post("/api/v1/kb/notices", headers=admin(), json={
        "title": "关于调整12345热线工单先行联系时限的通知", "doc_number": "示例〔2026〕1号", "published_on": "2026-11-20",
        "text": "承办单位收到工单后先行联系来电市民的时限调整为……", "unit": "区12345热线办"})
    assert r.status_code == 201
    body = r.json()
    assert body["tasks"] and body["tasks"][0]["due_date"] == "2026-11-25"
    assert "RX008" in [t["entry_id"] for t in body["tasks"][:3]]
    assert client.post("/api/v1/kb/notices", headers=admin(), json={"title": "x"}).status_code == 422


def test_calendar_years_can_be_loaded(client):
    r = client.post("/api/v1/calendar/years", headers=admin(), json={
        "year": 2027, "days": [{"date": "2027-01-01", "type": "holiday", "name": "元旦"}]})
    assert r.status_code == 200 and r.json()["days"] == 1
    assert "2027" in json.dumps(client.get("/api/v1/calendar/years").json())
    bad = client.post("/api/v1/calendar/upload", headers=admin(),
                      files={"file": ("2028.json", b'{"year": 2028, "days": [{"date": "2028-01-01", "type": "off"}]}')})
    assert bad.status_code == 422 and "type" in bad.json()["detail"]
    assert client.post("/api/v1/calendar/years", json={"year": 2027, "days": []}).status_code == 401
    assert wait_for(lambda: True)


def test_work_order_presets_and_deadline_preview(client):
    presets = client.get("/api/v1/workorders/presets").json()
    assert {"id", "title", "source"} <= set(presets[0])
    assert "001_40c574ce7ed1135a.txt" in {p["source"] for p in presets}
    r = client.get("/api/v1/workorders/presets/songjiang-minzhengju-12345/deadlines",
                   params={"received_at": "2026-09-30T16:30:00+08:00", "ticket_type": "紧急"})
    assert r.status_code == 200
    assert r.json()["deadlines"]["handling"]["at"].startswith("2026-10-01T23:59:59")
    assert client.get("/api/v1/workorders/presets/nope/deadlines").status_code == 404
    assert client.get("/api/v1/workorders/presets/youyilu/deadlines",
                      params={"received_at": "2026-09-30T10:00:00"}).status_code == 422
    assert client.get("/api/v1/workorders/presets/youyilu/deadlines",
                      params={"received_at": "yesterday"}).status_code == 422


def test_resolving_a_missing_item_can_add_the_citizens_wording_to_the_entry(client):
    """办结 with add_question: the citizen's own words become a similar question of the answering entry, in a new
    version the office publishes at once and a unit submits for review; the search then finds the entry by them."""
    from tests.api.test_search_api import search

    q = "我们家是低保户，孩子今年考上大学了，学费那块政府能帮着减免点吗"
    gap = client.post("/api/v1/kb/missing", json={"question": q, "shown": ["MZ001"], "channel": "wechat"}).json()
    entry = client.get("/api/v1/kb/entries/MZ001").json()
    v = entry["published_version"]
    r = client.post(f"/api/v1/kb/gaps/{gap['id']}/resolve",
                    json={"entry_id": "MZ001", "version": v, "add_question": True}, headers=admin())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "resolved" and body["resolved_version"] == v
    assert body["question_version"] == v + 1 and body["question_version_status"] == "published"
    added = client.get(f"/api/v1/kb/entries/MZ001/versions/{v + 1}").json()
    assert added["similar_questions"][-1] == q and added["answer"] == entry["current"]["answer"]
    assert wait_for(lambda: search(client, q, channel="api").json()["results"][0]["matched_question"] == q)

    # a unit's clerk: the new version waits for the reviewer; the published one is unchanged
    clerk = make_token(client, "unit", "区民政局")
    q2 = "家里老人瘫痪在床，低保能不能单独给老人办一份"
    gap2 = client.post("/api/v1/kb/missing", json={"question": q2, "shown": ["MZ001"], "channel": "web"}).json()
    r = client.post(f"/api/v1/kb/gaps/{gap2['id']}/resolve",
                    json={"entry_id": "MZ001", "version": v + 1, "add_question": True}, headers=clerk)
    assert r.status_code == 200, r.text
    assert r.json()["question_version"] == v + 2 and r.json()["question_version_status"] == "in_review"
    assert client.get("/api/v1/kb/entries/MZ001").json()["published_version"] == v + 1

    # a correction has no citizen wording to add: refused, and the item stays open
    corr = client.post("/api/v1/kb/corrections", json={"entry_id": "MZ001", "comment": "电话号码有误"}).json()
    r = client.post(f"/api/v1/kb/gaps/{corr['id']}/resolve",
                    json={"entry_id": "MZ001", "version": v + 1, "add_question": True}, headers=admin())
    assert r.status_code == 422 and "查无" in r.json()["detail"]
    assert client.get(f"/api/v1/kb/gaps/{corr['id']}", headers=admin()).json()["gap"]["status"] == "open"

"""Work orders through HTTP: creation, deadlines, the event log, roles, masking and bad input."""

from tests.api.conftest import admin, make_token

ORDER = {"channel": "phone", "category": "投诉", "content": "小区门口夜间施工噪声扰民，每天到凌晨一点",
         "address": "宝山区友谊路街道某小区", "contact": {"name": "张三", "phone": "13812345678"}, "tags": ["普通"],
         "unit": "区建设和管理委员会", "preset": "baoshan-jianguanwei"}


def test_create_and_handle_an_order_to_closure(client):
    op = make_token(client, "operator")
    unit = make_token(client, "unit", "区建设和管理委员会")
    r = client.post("/api/v1/workorders", json=ORDER, headers=op)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["number"].startswith("GD") and order["status"] == "派单" and order["unit"] == "区建设和管理委员会"
    assert {"first_contact", "handling", "return_window"} <= set(order["deadlines"])
    assert order["contact"]["phone"] == "138****5678"  # operators see it masked
    n = order["number"]
    seen = client.get(f"/api/v1/workorders/{n}", headers=unit).json()
    assert seen["contact"]["phone"] == "13812345678"  # the handling unit needs it for 先行联系
    for kind, data, who in [("签收", {}, unit), ("先行联系", {}, unit), ("办结回复", {"result": "实际解决"}, unit),
                            ("审核", {"approved": True}, admin()), ("回访", {"satisfaction": "满意"}, op),
                            ("结案", {}, admin())]:
        r = client.post(f"/api/v1/workorders/{n}/events", json={"kind": kind, "data": data}, headers=who)
        assert r.status_code == 200, (kind, r.text)
    final = client.get(f"/api/v1/workorders/{n}", headers=admin()).json()
    assert final["status"] == "结案" and [e["kind"] for e in final["events"]][:2] == ["受理", "派单"]


def test_illegal_transition_is_409_and_stores_nothing(client):
    n = client.post("/api/v1/workorders", json=ORDER, headers=admin()).json()["number"]
    r = client.post(f"/api/v1/workorders/{n}/events", json={"kind": "结案"}, headers=admin())
    assert r.status_code == 409 and "不能" in r.json()["detail"]
    assert len(client.get(f"/api/v1/workorders/{n}", headers=admin()).json()["events"]) == 2


def test_units_see_and_act_on_their_own_orders_only(client):
    n = client.post("/api/v1/workorders", json=ORDER, headers=admin()).json()["number"]
    other = make_token(client, "unit", "区民政局")
    assert client.get(f"/api/v1/workorders/{n}", headers=other).status_code == 403
    assert client.post(f"/api/v1/workorders/{n}/events", json={"kind": "签收"}, headers=other).status_code == 403
    assert all(o["unit"] == "区民政局" for o in client.get("/api/v1/workorders", headers=other).json())


def test_bad_input_is_a_clear_4xx(client):
    op = make_token(client, "operator")
    cases = [
        ({**ORDER, "contact": {"phone": "12345"}}, 422, "电话"),
        ({**ORDER, "content": "   "}, 422, "内容"),
        ({**ORDER, "preset": "nope"}, 404, "预设"),
        ({**ORDER, "category": "闲聊"}, 422, "category"),
        ({**ORDER, "tags": ["加急"]}, 422, "标签"),
        ({**ORDER, "unit": "区城管局（错字）"}, 422, "未知承办单位"),
        ({**ORDER, "received_at": "2026-01-05T09:00:00+08:00"}, 403, "补录"),
    ]
    for body, status, fragment in cases:
        r = client.post("/api/v1/workorders", json=body, headers=op)
        assert r.status_code == status and fragment in r.json()["detail"], (body, r.text)
    assert client.post("/api/v1/workorders", json=ORDER).status_code == 401
    unit = make_token(client, "unit", "区民政局")
    assert client.post("/api/v1/workorders", json=ORDER, headers=unit).status_code == 403
    assert client.get("/api/v1/workorders/GD000", headers=admin()).status_code == 404
    n = client.post("/api/v1/workorders", json=ORDER, headers=admin()).json()["number"]
    assert client.post(f"/api/v1/workorders/{n}/events", json={"kind": "催办"}, headers=admin()).status_code == 422


def test_admin_back_fills_received_at_and_deadlines_follow_the_calendar(client):
    body = {**ORDER, "received_at": "2026-09-30T10:00:00+08:00"}
    order = client.post("/api/v1/workorders", json=body, headers=admin()).json()
    assert order["deadlines"]["first_contact"].startswith("2026-10-08")
    assert order["deadlines"]["handling"].startswith("2026-10-13")
    future = client.post("/api/v1/workorders", headers=admin(), json={**ORDER, "received_at": "2099-01-01T09:00:00+08:00"})
    assert future.status_code == 422 and "晚于" in future.json()["detail"]
    # an order received in late December is due in a year chinesecalendar does not know yet: provisional
    preview = client.get("/api/v1/workorders/presets/baoshan-jianguanwei/deadlines",
                         params={"received_at": "2026-12-28T09:00:00+08:00"}).json()
    assert preview["deadlines"]["handling"]["provisional"] is True


def test_reply_drafts_fill_known_facts_and_prompt_for_the_rest(client):
    unit = make_token(client, "unit", "区建设和管理委员会")
    n = client.post("/api/v1/workorders", json=ORDER, headers=admin()).json()["number"]
    for kind, data in [("签收", {}), ("先行联系", {}), ("办结回复", {"result": "实际解决"})]:
        client.post(f"/api/v1/workorders/{n}/events", json={"kind": kind, "data": data}, headers=unit)
    r = client.post(f"/api/v1/workorders/{n}/reply-draft", headers=unit,
                    json={"template": "hotline", "measures": ["责令工地22时后停止高噪声作业"], "accepted": True})
    text = r.json()["text"]
    assert "区建设和管理委员会工作人员与来电人张三" in text and "属实" in text and "表示接受" in text
    assert "责令工地22时后停止高噪声作业" in text and "[所用政策依据]" in text
    x = client.post(f"/api/v1/workorders/{n}/reply-draft", headers=unit, json={"template": "xinfang"}).json()["text"]
    assert x.startswith("张三：") and "30 日内" in x and "[上一级行政机关]" in x
    assert client.post(f"/api/v1/workorders/{n}/reply-draft", headers=unit, json={"template": "x"}).status_code == 422


def test_third_repeat_raises_supervision_and_links_the_chain(client):
    body = {**ORDER, "contact": {"phone": "13700001111"}, "address": "宝山区友谊路街道重复小区",
            "content": "重复小区门口工地夜间施工噪声扰民"}
    first = client.post("/api/v1/workorders", json=body, headers=admin()).json()
    second = client.post("/api/v1/workorders", json={**body, "content": "重复小区工地晚上施工太吵了"}, headers=admin()).json()
    third = client.post("/api/v1/workorders", json={**body, "contact": {"phone": "13900002222"},
                                                      "content": "重复小区门口的工地半夜还在施工，吵得睡不着"},
                        headers=admin()).json()
    assert first["repeat_of"] is None and second["repeat_of"] == first["number"] and second["repeat_count"] == 2
    assert not second["supervised"]
    assert third["repeat_of"] == first["number"] and third["repeat_count"] == 3
    assert third["supervised"] and third["supervision"][0]["reason"] == "repeat"
    other = client.post("/api/v1/workorders", json={**body, "content": "咨询一下公积金怎么提取"}, headers=admin()).json()
    assert other["repeat_of"] is None  # same caller, different matter


def test_supervision_by_hand_on_unsatisfied_callback_and_on_overdue(client):
    unit = make_token(client, "unit", "区建设和管理委员会")
    n = client.post("/api/v1/workorders", json={**ORDER, "contact": {"phone": "13600003333"},
                                                  "address": "张庙街道督办测试路1号"}, headers=admin()).json()["number"]
    r = client.post(f"/api/v1/workorders/{n}/supervise", json={"reason": "media", "note": "晚报报道"}, headers=admin())
    assert r.status_code == 200 and r.json()["supervision"][-1]["reason_text"] == "舆论媒体披露"
    assert r.json()["supervision"][-1]["basis"].endswith("5个工作日内办理")
    assert client.post(f"/api/v1/workorders/{n}/supervise", json={"reason": "boss"}, headers=admin()).status_code == 422
    assert client.post(f"/api/v1/workorders/{n}/supervise", json={"reason": "media"}, headers=unit).status_code == 403
    for kind, data, who in [("签收", {}, unit), ("办结回复", {"result": "解释说明"}, unit), ("审核", {"approved": True}, admin()),
                            ("回访", {"satisfaction": "不满意"}, admin())]:
        assert client.post(f"/api/v1/workorders/{n}/events", json={"kind": kind, "data": data}, headers=who).status_code == 200
    o = client.get(f"/api/v1/workorders/{n}", headers=admin()).json()
    assert [x["reason"] for x in o["supervision"]] == ["media", "unsatisfied"]
    old = client.post("/api/v1/workorders", headers=admin(),
                      json={**ORDER, "contact": {"phone": "13500004444"}, "received_at": "2026-09-01T09:00:00+08:00"})
    swept = client.post("/api/v1/workorders/supervision/sweep", headers=admin()).json()["supervised"]
    assert old.json()["number"] in swept
    assert client.post("/api/v1/workorders/supervision/sweep", headers=admin()).json()["supervised"] == []


def test_reports_export_and_chart(client):
    r = client.get("/api/v1/reports/units", headers=admin())
    assert r.status_code == 200
    units = r.json()["units"]
    assert units and units[0]["rank"] == 1 and "first_contact_rate" in units[0]
    csv_text = client.get("/api/v1/reports/units/export", params={"format": "csv"}, headers=admin()).content.decode("utf-8-sig")
    assert csv_text.splitlines()[0].startswith("排名,承办单位,工单数,先行联系率")
    xlsx = client.get("/api/v1/reports/units/export", params={"format": "xlsx"}, headers=admin())
    assert xlsx.content[:2] == b"PK"
    page = client.get("/api/v1/reports/weekly/chart", headers=admin())
    assert page.status_code == 200 and "<svg" in page.text
    assert client.get("/api/v1/reports/units", headers=make_token(client, "unit", "区民政局")).status_code == 403
    assert client.get("/api/v1/reports/units", params={"start": "2026-12-01", "end": "2026-01-01"},
                      headers=admin()).status_code == 422


def test_classify_endpoint(client):
    r = client.post("/api/v1/intake/classify", json={"text": "小区门口的路灯坏了一个星期了，晚上很黑"})
    body = r.json()
    assert r.status_code == 200 and body["accepted"] and body["category"] in ("求助", "投诉")
    assert {"exclusion", "reason", "rule", "advice", "urgency", "threat", "suggested_units", "confidence"} <= set(body)
    fire = client.post("/api/v1/intake/classify", json={"text": "楼下着火了，火很大"}).json()
    assert fire["exclusion"] == "emergency" and "119" in fire["advice"]
    assert client.post("/api/v1/intake/classify", json={"text": "  "}).status_code == 422
    assert client.post("/api/v1/intake/classify", json={"text": "啊" * 5001}).status_code == 422
    assert client.post("/api/v1/intake/classify", json={"text": "😀 hello"}).status_code == 200


def test_dispatch_only_to_units_of_the_directory(client):
    names = [u["name"] for u in client.get("/api/v1/intake/units").json()]
    assert len(names) >= 25 and "区建设和管理委员会" in names
    n = client.post("/api/v1/workorders", json={**ORDER, "unit": None}, headers=admin()).json()["number"]
    r = client.post(f"/api/v1/workorders/{n}/events", json={"kind": "派单", "data": {"unit": "不存在的局"}},
                    headers=admin())
    assert r.status_code == 422 and "未知承办单位" in r.json()["detail"]
    order = client.get(f"/api/v1/workorders/{n}", headers=admin()).json()
    assert order["status"] == "受理" and len(order["events"]) == 1  # nothing partial stored
    r = client.post(f"/api/v1/workorders/{n}/events", json={"kind": "派单", "data": {"unit": "区民政局"}},
                    headers=admin())
    assert r.status_code == 200 and r.json()["unit"] == "区民政局"


def test_a_retried_create_with_the_same_idempotency_key_returns_the_first_order(client):
    """The bot gives the API 4 s; a create that times out on its side may still be stored. Its retry carries the
    same key and must get that order back, not make a second one (which would also count as a repeat)."""
    op = make_token(client, "operator")
    key = {"Idempotency-Key": "e2e-conversation-7:3f9a"}
    first = client.post("/api/v1/workorders", json=ORDER, headers={**op, **key})
    again = client.post("/api/v1/workorders", json=ORDER, headers={**op, **key})
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json()["number"] == first.json()["number"]
    other = client.post("/api/v1/workorders", json=ORDER, headers={**admin(), **key})  # keys are per creator
    plain = client.post("/api/v1/workorders", json=ORDER, headers=op)
    assert other.status_code == 201 and plain.status_code == 201
    assert len({first.json()["number"], other.json()["number"], plain.json()["number"]}) == 3
    too_long = client.post("/api/v1/workorders", json=ORDER, headers={**op, "Idempotency-Key": "x" * 300})
    assert too_long.status_code == 422

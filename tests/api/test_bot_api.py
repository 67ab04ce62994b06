"""What the dialogue bot may do through the API: register orders, answer progress queries, hand off."""

from tests.api.conftest import admin, bot, make_token

ORDER = {"channel": "wechat", "category": "投诉", "content": "楼下饭店油烟很大\n发生时间：每天晚上", "address": "友谊路100号",
         "contact": {"name": "", "phone": "13812345678"}, "tags": ["普通"]}


def test_bot_registers_orders_but_cannot_dispatch_or_backfill(client):
    r = client.post("/api/v1/workorders", json=ORDER, headers=bot())
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "受理" and order["unit"] is None and order["contact"]["phone"] == "138****5678"
    assert order["deadlines"]["first_contact"]
    for extra in ({"unit": "区城管执法局"}, {"received_at": "2026-01-05T09:00:00+08:00"}):
        r = client.post("/api/v1/workorders", json={**ORDER, **extra}, headers=bot())
        assert r.status_code == 403 and "对话机器人" in r.json()["detail"]


def test_progress_needs_the_phone_tail_and_leaks_nothing(client):
    number = client.post("/api/v1/workorders", json=ORDER, headers=bot()).json()["number"]
    r = client.post(f"/api/v1/workorders/{number}/progress", json={"phone_last4": "5678"}, headers=bot())
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["number"] == number and p["status"] == "受理" and p["last_event"]["kind"] == "受理"
    assert "contact" not in p and "13812345678" not in r.text and "content" not in p
    wrong = client.post(f"/api/v1/workorders/{number}/progress", json={"phone_last4": "0000"}, headers=bot())
    missing = client.post("/api/v1/workorders/GD20990101000001/progress", json={"phone_last4": "5678"}, headers=bot())
    assert wrong.status_code == missing.status_code == 404
    assert wrong.json()["detail"] == missing.json()["detail"]  # no way to tell which part was wrong
    bad = client.post(f"/api/v1/workorders/{number}/progress", json={"phone_last4": "56a8"}, headers=bot())
    assert bad.status_code == 422 and "后四位" in bad.json()["detail"]
    assert client.post(f"/api/v1/workorders/{number}/progress", json={"phone_last4": "5678"}).status_code == 401


def test_handoff_queue_threats_first_and_taken_once(client):
    plain = client.post("/api/v1/handoffs", json={"sender_id": "u1", "channel": "web", "reason": "request",
                                                  "text": "转人工", "transcript": ["你好", "转人工"]}, headers=bot())
    threat = client.post("/api/v1/handoffs", json={"sender_id": "u2", "channel": "wechat", "reason": "threat",
                                                   "text": "不解决我就跳楼"}, headers=bot())
    assert plain.status_code == threat.status_code == 201
    assert threat.json()["threat"] is True
    op = make_token(client, "operator")
    queue = client.get("/api/v1/handoffs", headers=op).json()
    ids = [h["id"] for h in queue]
    assert ids.index(threat.json()["id"]) < ids.index(plain.json()["id"])
    assert [h["id"] for h in client.get("/api/v1/handoffs?threat=true", headers=op).json()] == [threat.json()["id"]]
    r = client.post(f"/api/v1/handoffs/{plain.json()['id']}/take", headers=op)
    assert r.status_code == 200 and r.json()["status"] == "taken"
    again = client.post(f"/api/v1/handoffs/{plain.json()['id']}/take", headers=admin())
    assert again.status_code == 409 and "接入" in again.json()["detail"]
    assert client.get("/api/v1/handoffs", headers=bot()).status_code == 403
    bad = client.post("/api/v1/handoffs", json={"sender_id": "u3", "reason": "bored"}, headers=bot())
    assert bad.status_code == 422 and "reason" in bad.json()["detail"]

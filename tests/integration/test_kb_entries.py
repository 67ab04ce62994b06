"""The entry life cycle on real SQLite and PostgreSQL."""

from datetime import timedelta

import pytest

from kb import entries as kbe
from kb.db import transaction
from kb.errors import Conflict, NotFound, PermissionDenied

ADMIN = kbe.Actor("管理员", "admin")
REVIEWER = kbe.Actor("审核人", "reviewer")
MZ = kbe.Actor("民政经办", "unit", "区民政局")
RS = kbe.Actor("人社经办", "unit", "区人力资源和社会保障局")
OPERATOR = kbe.Actor("话务员", "operator")


def data(**kw) -> kbe.EntryData:
    base = dict(question="如何申请临时救助？", similar_questions=["临时救助怎么申请", "家里突发困难找谁"],
                answer="向户籍所在地街道（镇）社区事务受理服务中心提出申请。", policy_basis="《社会救助暂行办法》第四十八条",
                unit="区民政局", category="民政", tags=["救助"])
    base.update(kw)
    return kbe.EntryData(**base)


def test_full_flow_with_supersede_retire_and_rollback(factory, now):
    with transaction(factory) as s:
        v1 = kbe.create_entry(s, MZ, data(), now, entry_id="MZ900")
        kbe.submit(s, MZ, "MZ900", v1.version, now)
        kbe.publish(s, REVIEWER, "MZ900", 1, now)
        assert kbe.kb_version(s) == 1
    with transaction(factory) as s:
        v2 = kbe.add_version(s, MZ, "MZ900", data(answer="新答案：可通过“一网通办”在线申请。"), now + timedelta(hours=1))
        assert v2.version == 2 and v2.status == "draft"
        # the published version stays searchable while v2 is a draft
        assert [v.version for v in kbe.searchable_versions(s)] == [1]
        kbe.submit(s, MZ, "MZ900", 2, now)
        kbe.publish(s, REVIEWER, "MZ900", 2, now)
    with transaction(factory) as s:
        statuses = {v.version: v.status for v in kbe.versions(s, "MZ900")}
        assert statuses == {1: "superseded", 2: "published"}
        changes = kbe.diff(s, "MZ900", 1, 2)
        assert [c["field"] for c in changes] == ["answer"] and "一网通办" in changes[0]["unified"]
        v3 = kbe.rollback(s, ADMIN, "MZ900", 1, now)
        assert v3.version == 3 and v3.status == "published" and v3.answer == data().answer
        kbe.retire(s, REVIEWER, "MZ900", now, "政策废止")
        assert kbe.searchable_versions(s) == []
        actions = [e.action for e in kbe.history(s, "MZ900")]
        assert actions[0] == "create_version" and actions[-1] == "retired" and "superseded" in actions


@pytest.mark.parametrize(
    "steps,error",
    [
        (["publish"], Conflict),  # a unit cannot publish, and draft → published is the office's shortcut only
        (["submit", "submit"], Conflict),
        (["retire"], Conflict),
    ],
)
def test_illegal_transitions_are_refused_and_nothing_changes(factory, now, steps, error):
    with transaction(factory) as s:
        kbe.create_entry(s, MZ, data(), now, entry_id="MZ901")
    with pytest.raises((error, PermissionDenied)):
        with transaction(factory) as s:
            for step in steps:
                if step == "submit":
                    kbe.submit(s, MZ, "MZ901", 1, now)
                elif step == "publish":
                    kbe.publish(s, REVIEWER, "MZ901", 1, now)
                else:
                    kbe.retire(s, REVIEWER, "MZ901", now)
    with factory() as s:
        assert kbe.get_version(s, "MZ901", 1).status == "draft"
        assert kbe.kb_version(s) == 0


def test_roles(factory, now):
    with transaction(factory) as s:
        kbe.create_entry(s, MZ, data(), now, entry_id="MZ902")
    with pytest.raises(PermissionDenied, match="区民政局"), transaction(factory) as s:
        kbe.add_version(s, RS, "MZ902", data(), now)
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        kbe.create_entry(s, RS, data(), now)  # content of another unit
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        kbe.create_entry(s, OPERATOR, data(unit="区民政局"), now)
    with transaction(factory) as s:
        kbe.submit(s, MZ, "MZ902", 1, now)
    with pytest.raises(PermissionDenied), transaction(factory) as s:
        kbe.publish(s, MZ, "MZ902", 1, now)  # units submit; reviewers publish
    with transaction(factory) as s:
        kbe.send_back(s, REVIEWER, "MZ902", 1, now, "请补充材料清单")
        assert kbe.get_version(s, "MZ902", 1).status == "draft"


def test_unknown_entry_and_version(factory, now):
    with factory() as s:
        with pytest.raises(NotFound, match="X404"):
            kbe.get_entry(s, "X404")
    with transaction(factory) as s:
        kbe.create_entry(s, MZ, data(), now, entry_id="MZ903")
    with factory() as s, pytest.raises(NotFound, match="第 7 版"):
        kbe.get_version(s, "MZ903", 7)


def test_duplicate_id_is_a_conflict(factory, now):
    with transaction(factory) as s:
        kbe.create_entry(s, MZ, data(), now, entry_id="MZ904")
    with pytest.raises(Conflict), transaction(factory) as s:
        kbe.create_entry(s, MZ, data(), now, entry_id="MZ904")


def test_times_are_timezone_aware_shanghai(factory, now):
    with transaction(factory) as s:
        kbe.create_entry(s, MZ, data(), now, entry_id="MZ905")
    with factory() as s:
        created = kbe.get_version(s, "MZ905", 1).created_at
        assert created == now and str(created.tzinfo) == "Asia/Shanghai"

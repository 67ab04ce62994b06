"""50 concurrent creates on a real database: 50 orders, 50 unique numbers, none lost."""

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from api import workorders as svc
from kb.db import transaction
from kb.entries import Actor
from kb.models import WorkOrder
from kb.workdays import WorkCalendar

OP = Actor("话务员", "operator")
BODY = {"channel": "phone", "category": "求助", "content": "路灯不亮", "contact": {"phone": "13900001111"}}


def test_fifty_concurrent_creates(factory, now):
    cal = WorkCalendar()

    def create(_: int) -> str:
        with transaction(factory) as s:
            return svc.create_order(s, OP, dict(BODY), now, cal).number

    with ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(create, range(50)))
    assert len(set(numbers)) == 50
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(WorkOrder)) == 50

"""Shared fixtures: a real database per test (SQLite file and PostgreSQL), migrated by Alembic."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from api.migrate import upgrade  # noqa: E402
from kb.db import make_engine, session_factory  # noqa: E402
from kb.workdays import TZ  # noqa: E402

PG_URL = os.environ.get("HOTLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def _pg_admin_url() -> str:
    return "postgresql+psycopg://" + PG_URL.removeprefix("postgresql://")


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir per session so the domain encoder of the demo KB is trained once."""
    return tmp_path_factory.mktemp("hotline-data")


def create_pg_database(name: str) -> str:
    """A new, empty database on the test server; its URL."""
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # the production-profile tests must run: fail loudly, never skip
        pytest.fail(f"PostgreSQL at {PG_URL} is required for the production-profile tests: {e}")
    finally:
        admin.dispose()
    return PG_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(name: str) -> None:
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}"
        upgrade(url)
        yield url
        return
    name = f"hotline_test_{uuid.uuid4().hex[:12]}"
    url = create_pg_database(name)
    upgrade(url)
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path)


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 9, 28, 10, 0, tzinfo=TZ)

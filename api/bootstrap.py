"""First-run setup: the demo knowledge base and synonym table when the database is empty, and the search service."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from kb import entries as kbe
from kb import exchange
from kb.db import transaction
from kb.models import Entry, Synonym
from kb.service import NEAR_MISS_FILE, VOTE_FILE, SearchService
from kb.text import DATA_DIR, load_synonyms_file
from kb.workdays import TZ

if TYPE_CHECKING:
    from api.settings import Settings

logger = logging.getLogger(__name__)
DEMO_DIR = DATA_DIR / "demo"
SYNONYMS_FILE = DATA_DIR / "synonyms.tsv"
SYSTEM = kbe.Actor("系统初始化", "admin")


def demo_files() -> list[Path]:
    return sorted(DEMO_DIR.glob("*.jsonl"))


def load_demo(s: Session, now: datetime) -> dict[str, int]:
    rows = []
    for f in demo_files():
        rows.extend(exchange.parse(f.read_bytes(), f.name))
    result = exchange.import_rows(s, SYSTEM, rows, now, publish=True)
    n_syn = 0
    for term, canonical in load_synonyms_file(SYNONYMS_FILE).items():
        s.add(Synonym(term=term, canonical=canonical, created_by=SYSTEM.name, created_at=now))
        n_syn += 1
    kbe.bump_kb_version(s, now)
    return result | {"synonyms": n_syn}


def load_demo_if_empty(factory: sessionmaker[Session]) -> dict[str, int] | None:
    with transaction(factory) as s:
        if (s.scalar(select(func.count()).select_from(Entry)) or 0) or s.scalar(
                select(func.count()).select_from(Synonym)):
            return None
        result = load_demo(s, datetime.now(TZ))
    logger.info("demo knowledge base loaded: %s", result)
    return result


def search_service(factory: sessionmaker[Session], settings: Settings) -> SearchService:
    """The search service of the API and the CLI: over the demo KB (loaded into an empty database) with the demo's
    near-miss seed and vote examples, or, with `HOTLINE_LOAD_DEMO_KB=0`, over what the database holds and neither."""
    if settings.load_demo_kb:
        load_demo_if_empty(factory)
    return SearchService(factory, settings.data_dir, settings.kb_encoder,
                         near_miss_file=NEAR_MISS_FILE if settings.load_demo_kb else None,
                         vote_file=VOTE_FILE if settings.load_demo_kb else None)

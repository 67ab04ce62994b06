"""Settings of the core API process. The names are a contract shared with the Makefile, docs and CI."""

from __future__ import annotations

import logging
import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kb.db import sqlite_url

logger = logging.getLogger(__name__)

PLACEHOLDER_TOKENS = {"", "changeme", "change-me", "admin", "secret", "token"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    environment: str = Field("development", alias="HOTLINE_ENV")
    data_dir: Path = Field(Path("./var"), alias="HOTLINE_DATA_DIR")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    admin_token: str | None = Field(None, alias="HOTLINE_ADMIN_TOKEN")
    # The dialogue bot's action server acts for citizens with this token (role "bot").
    bot_token: str | None = Field(None, alias="HOTLINE_BOT_TOKEN")
    load_demo_kb: bool = Field(True, alias="HOTLINE_LOAD_DEMO_KB")
    kb_encoder: str | None = Field("BAAI/bge-small-zh-v1.5", alias="KB_ENCODER")
    index_poll_seconds: float = Field(1.0, alias="HOTLINE_INDEX_POLL_SECONDS")
    # Where browsers reach the Rasa socket.io channel from the /chat page (the public URL behind a proxy).
    rasa_url: str = Field("http://127.0.0.1:5005", alias="HOTLINE_RASA_URL")

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        for attr, env in (("admin_token", "HOTLINE_ADMIN_TOKEN"), ("bot_token", "HOTLINE_BOT_TOKEN")):
            if getattr(self, attr) in PLACEHOLDER_TOKENS or getattr(self, attr) is None:
                if self.environment != "development":
                    raise ValueError(f"{env} must be set to a real secret outside development")
                setattr(self, attr, self._dev_token(attr))
        return self

    def _dev_token(self, name: str) -> str:
        """Development only: a generated token kept under the data dir, so restarts (and the bot) keep it."""
        path = self.data_dir / name
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        path.write_text(token)
        path.chmod(0o600)
        return token

    @property
    def db_url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)


@lru_cache
def get_settings() -> Settings:
    s = Settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    return s

"""`hotline` command line: serve the API and maintain the knowledge base from a shell."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from api.settings import get_settings
from kb.workdays import TZ

app = typer.Typer(help="热线智能助手 core", no_args_is_help=True)
kb_app = typer.Typer(help="知识库：导入、导出、检索、重建索引", no_args_is_help=True)
cal_app = typer.Typer(help="节假日数据（chinesecalendar 未覆盖的年份）", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(cal_app, name="calendar")

SYSTEM_ACTOR_NAME = "命令行管理员"


def _factory():  # type: ignore[no-untyped-def]
    from api.migrate import upgrade
    from kb.db import make_engine, session_factory

    settings = get_settings()
    upgrade(settings.db_url)
    return session_factory(make_engine(settings.db_url))


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def migrate() -> None:
    """Apply pending Alembic migrations."""
    _factory()
    typer.echo("数据库已是最新结构")


@app.command()
def serve(port: Annotated[int, typer.Option(help="端口")] = 8000,
          host: Annotated[str, typer.Option(help="监听地址")] = "127.0.0.1") -> None:
    """Apply pending migrations, load the demo KB into an empty database, then serve the API."""
    import uvicorn

    from api.main import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    _factory()
    if settings.environment == "development" and not _env_token_set():
        typer.secho(f"开发环境管理员令牌（HOTLINE_ADMIN_TOKEN）：{settings.admin_token}", fg=typer.colors.YELLOW)
    typer.echo(f"API:    http://{host}:{port}/docs\n检索:   curl -s -X POST http://{host}:{port}/api/v1/kb/search "
               "-H 'Content-Type: application/json' -d '{\"query\": \"低保怎么申请\"}'")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


def _env_token_set() -> bool:
    import os

    return bool(os.environ.get("HOTLINE_ADMIN_TOKEN"))


@kb_app.command("import")
def kb_import(file: Path, publish: Annotated[bool, typer.Option("--publish", help="导入后直接发布")] = False) -> None:
    """Import JSONL / CSV / XLSX; the whole file or nothing."""
    from kb import exchange
    from kb.db import transaction
    from kb.entries import Actor
    from kb.errors import KbError

    if not file.exists():
        _fail(f"文件不存在：{file}")
    try:
        rows = exchange.parse(file.read_bytes(), file.name)
        with transaction(_factory()) as s:
            result = exchange.import_rows(s, Actor(SYSTEM_ACTOR_NAME, "admin"), rows, datetime.now(TZ), publish)
    except KbError as e:
        _fail(f"导入失败，未写入任何数据：{e.message}")
    typer.echo(json.dumps(result, ensure_ascii=False))


@kb_app.command("export")
def kb_export(file: Path, latest: Annotated[bool, typer.Option(help="导出每条的最新版本（含草稿）")] = False) -> None:
    """Export published entries (format from the file extension: .jsonl, .csv, .xlsx)."""
    from kb import entries as kbe
    from kb import exchange

    fmt = file.suffix.lstrip(".").lower()
    if fmt not in exchange.FORMATS:
        _fail(f"不支持的格式 {fmt}；可用：{', '.join(exchange.FORMATS)}")
    with _factory()() as s:
        rows = kbe.list_entries(s, limit=10**9)[1] if latest else kbe.searchable_versions(s)
        file.write_bytes(exchange.dump(exchange.export_rows(rows), fmt))
    typer.echo(f"已导出 {len(rows)} 条到 {file}")


def _service():  # type: ignore[no-untyped-def]
    from api.bootstrap import search_service

    return search_service(_factory(), get_settings())


@kb_app.command("search")
def kb_search(query: str, top_k: Annotated[int, typer.Option("--top-k")] = 5,
              as_json: Annotated[bool, typer.Option("--json", help="输出 JSON")] = False) -> None:
    """Search the published KB as a citizen would (records no gap)."""
    if not query.strip():
        _fail("问题不能为空")
    outcome = _service().search(query, top_k=top_k, today=datetime.now(TZ).date())
    results = [{"entry_id": h.doc.entry_id, "version": h.doc.version, "question": h.doc.question,
                "matched_question": h.matched_question, "answer": h.doc.answer, "policy_basis": h.doc.policy_basis,
                "unit": h.doc.unit, "score": round(h.score, 4)} for h in outcome.hits]
    if as_json:
        typer.echo(json.dumps({"decision": outcome.decision, "confidence": outcome.confidence, "results": results},
                              ensure_ascii=False, indent=2))
        return
    typer.echo(f"判定：{outcome.decision}  置信度：{outcome.confidence:.2f}")
    for r in results:
        typer.echo(f"  [{r['entry_id']} v{r['version']}] {r['score']:.3f} {r['question']}（{r['policy_basis']}）")


@kb_app.command("reindex")
def kb_reindex() -> None:
    """Rebuild the index (training the domain encoder if the published KB changed) and print its figures."""
    index = _service().rebuild()
    typer.echo(json.dumps(index.stats(), ensure_ascii=False))


@kb_app.command("tune")
def kb_tune() -> None:
    """Fit the fusion weights and decision thresholds on the tuning half of tests/data/dev_queries and the sets
    written for training (docs/search.md), and write kb/data/fusion.json and kb/data/vote_examples.jsonl."""
    from kb.evaluation import tune_and_save

    typer.echo(json.dumps(tune_and_save(), ensure_ascii=False, indent=2))


@cal_app.command("load")
def calendar_load(file: Path) -> None:
    """Load a year's holidays and make-up workdays (JSON or CSV) and recompute provisional due dates."""
    from kb import gaps
    from kb.db import transaction
    from kb.entries import Actor
    from kb.workdays import CalendarDataError, parse_calendar_file

    try:
        years, days = parse_calendar_file(file.read_bytes(), file.name)
    except (CalendarDataError, OSError) as e:
        _fail(f"无法导入：{e}")
    with transaction(_factory()) as s:
        result = gaps.store_calendar_year(s, years, days, Actor(SYSTEM_ACTOR_NAME, "admin"), datetime.now(TZ))
    typer.echo(json.dumps(result, ensure_ascii=False))


def main() -> None:
    app(prog_name="hotline")


if __name__ == "__main__":
    sys.exit(main())

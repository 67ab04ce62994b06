"""Start the three processes (core API, action server, Rasa) and wait until each answers.

Used by `make run`, by the end-to-end tests and by the bench, so all three start the system the same way.
Standard library only: it runs under either virtual environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE_VENV = ROOT / ".venv"
BOT_VENV = ROOT / ".venv-bot"
MODELS = ROOT / "var" / "models"


def latest_model(models_dir: Path = MODELS) -> Path:
    found = sorted(models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"没有训练好的 Rasa 模型（{models_dir}）：请先运行 make train")
    return found[-1]


def _get(url: str, timeout: float = 2.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (local URLs only)
            return r.read()
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


def rest_message(rasa_url: str, sender: str, text: str, timeout: float = 30.0) -> list[dict]:
    body = json.dumps({"sender": sender, "message": text}).encode()
    req = urllib.request.Request(f"{rasa_url}/webhooks/rest/webhook", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
        return json.loads(r.read())


@dataclass
class Stack:
    data_dir: Path
    api_port: int = 8000
    actions_port: int = 5055
    rasa_port: int = 5005
    model: Path | None = None
    endpoints: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def actions_url(self) -> str:
        return f"http://127.0.0.1:{self.actions_port}"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.rasa_port}"

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "HOTLINE_DATA_DIR": str(self.data_dir.resolve()), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "HOTLINE_API_URL": self.api_url, "HOTLINE_RASA_URL": self.rasa_url,
               "HOTLINE_ACTION_URL": f"{self.actions_url}/webhook", "PYTHONPATH": str(ROOT),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        for key in ("WECHAT_TOKEN", "WECHAT_ENCODING_AES_KEY", "WECHAT_APP_ID", "WECHAT_REDIS_URL"):
            env.setdefault(key, "")
        env.update(self.env)
        return env

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log_dir = self.log_dir or self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        out = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=self._env(), stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def _wait(self, name: str, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.data_dir / 'logs' / name}.log")
            if check():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{name} did not become ready in {timeout:.0f} s")

    def start(self, timeout: float = 300.0) -> Stack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        model = self.model or latest_model()
        endpoints = self.endpoints or ROOT / "bot" / "endpoints.yml"
        self._spawn("api", [str(CORE_VENV / "bin" / "hotline"), "serve", "--port", str(self.api_port)])
        self._spawn("actions", [str(BOT_VENV / "bin" / "python"), "-m", "rasa_sdk", "--actions", "actions",
                                "--port", str(self.actions_port)])
        self._spawn("rasa", [str(BOT_VENV / "bin" / "rasa"), "run", "--model", str(model), "--endpoints",
                             str(endpoints), "--credentials", str(ROOT / "bot" / "credentials.yml"),
                             "--port", str(self.rasa_port), "--cors", "*"])
        try:
            # ready once the intake models are built too: the bot gives the API 4 s per call
            self._wait("api", lambda: json.loads(_get(f"{self.api_url}/health") or b"{}").get("intake_ready"),
                       timeout)
            self._wait("actions", lambda: _get(f"{self.actions_url}/health") is not None, timeout)
            self._wait("rasa", lambda: (_get(f"{self.rasa_url}/") or b"").startswith(b"Hello"), timeout)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """`make run`: start everything, print where to chat, stop everything on Ctrl-C."""
    data_dir = Path(os.environ.get("HOTLINE_DATA_DIR", ROOT / "var"))
    port = int(os.environ.get("PORT", "8000"))
    stack = Stack(data_dir, api_port=port)
    print("正在启动 API、动作服务器和 Rasa（首次启动需构建索引，约 1 分钟）…", flush=True)
    try:
        stack.start()
    except RuntimeError as e:
        print(f"启动失败：{e}", file=sys.stderr)
        raise SystemExit(1) from e
    token = (data_dir / "admin_token").read_text().strip() if (data_dir / "admin_token").exists() else "（见环境变量）"
    print(f"""
热线智能助手已启动：
  网页聊天:      {stack.api_url}/chat
  API 文档:      {stack.api_url}/docs
  Rasa REST:     curl -s -X POST {stack.rasa_url}/webhooks/rest/webhook -d '{{"sender":"me","message":"低保怎么申请"}}'
  微信公众号:    {stack.rasa_url}/webhooks/wechat/webhook （WECHAT_TOKEN 等见 README）
  管理员令牌:    {token}
  日志:          {data_dir / 'logs'}
按 Ctrl-C 停止。""", flush=True)
    try:
        while all(p.poll() is None for p in stack.procs.values()):
            time.sleep(1)
        dead = [n for n, p in stack.procs.items() if p.poll() is not None]
        print(f"进程退出：{', '.join(dead)}；见日志 {data_dir / 'logs'}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()

"""``fakescope serve`` as its users meet it: flags, a bad or busy port, the banner, client disconnects."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

import fakescope.serve as serve
from fakescope.cli.main import main
from fakescope.serve import INSTALL_HINT


@pytest.fixture(autouse=True)
def _own_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # serve sets it for its process: undone after each test


class _FakeServer:
    runs: list[tuple[object, list[int]]] = []

    def __init__(self, config: object) -> None:
        self.config = config

    def run(self, sockets: list[socket.socket]) -> None:
        self.runs.append((self.config, [s.getsockname()[1] for s in sockets]))  # the socket closes afterwards


def _fake_uvicorn(monkeypatch: pytest.MonkeyPatch) -> type[_FakeServer]:
    fake = types.ModuleType("uvicorn")
    fake.Config = lambda app, **kw: (app, kw)  # type: ignore[attr-defined]
    fake.Server = _FakeServer  # type: ignore[attr-defined]
    _FakeServer.runs = []
    monkeypatch.setitem(sys.modules, "uvicorn", fake)  # no server is started; uvicorn need not be installed
    monkeypatch.setattr(serve, "missing_dependencies", lambda server=False: [])
    return _FakeServer


def test_cli_serve_binds_then_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")
    fake = _fake_uvicorn(monkeypatch)
    assert main(["serve", "--port", "0", "--model", "fast", "--max-pending", "7", "--log-level", "warning"]) == 0
    (app, kw), ports = fake.runs[0]
    port = ports[0]
    assert port > 0 and kw["log_level"] == "warning"
    assert app.state.limits.max_pending == 7  # type: ignore[attr-defined]
    assert f"http://127.0.0.1:{port}/" in capsys.readouterr().err  # the banner names the port really bound
    monkeypatch.setattr(serve, "missing_dependencies", lambda server=False: ["uvicorn"])
    assert main(["serve"]) == 2
    assert INSTALL_HINT in capsys.readouterr().err


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_bad_port_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["serve", "--port", port])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--port" in err and "Traceback" not in err


def test_busy_port_fails_before_the_banner(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = _fake_uvicorn(monkeypatch)
    monkeypatch.setattr(serve, "create_app", lambda *a, **k: pytest.fail("models loaded for a busy port"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "already in use" in err and "web app on" not in err and err.count("\n") == 1
    assert not fake.runs


def test_bad_limit_flag_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--max-pending", "0"]) == 2
    err = capsys.readouterr().err
    assert "max_pending must be > 0" in err and "Traceback" not in err


def test_serve_help_shows_every_default() -> None:
    from fakescope.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if getattr(a, "choices", None) and "serve" in a.choices)
    actions = [a for a in sub.choices["serve"]._actions if a.dest != "help"]
    dests = {a.dest for a in actions}
    assert {"port", "max_request_pixels", "max_file_pixels", "max_pending", "decode_workers"} <= dests
    for a in actions:
        assert a.help and ("(default" in a.help or a.dest == "model"), a.dest  # --model: "default: every bundled"


def test_disconnect_mid_upload_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """The ASGI app is driven directly: half a body, then the client is gone."""
    pytest.importorskip("fastapi")
    app = serve.create_app(["fast"])
    scope = {"type": "http", "method": "POST", "path": "/api/scan", "raw_path": b"/api/scan", "query_string": b"",
             "headers": [(b"content-type", b"multipart/form-data; boundary=bb"), (b"content-length", b"100000")],
             "http_version": "1.1", "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5),
             "root_path": "", "app": app}
    messages = [{"type": "http.request", "body": b"--bb\r\nContent-Disposition: form-data; name=\"files\"; "
                 b"filename=\"a.jpg\"\r\n\r\n" + b"x" * 5000, "more_body": True}, {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    with caplog.at_level(logging.INFO):
        asyncio.run(app(scope, receive, send))
    records = [r for r in caplog.records if "disconnect" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None and "\n" not in records[0].getMessage()
    assert app.state.pending.used == 0  # the slot was given back


@pytest.mark.slow
def test_real_server_disconnect_and_busy_port(tmp_path: Path) -> None:
    """A real ``fakescope serve`` on a free loopback port: an aborted upload logs one line, no traceback."""
    pytest.importorskip("uvicorn")
    env = {**os.environ, "PYTHONPATH": str(Path(serve.__file__).parents[2])}
    log = tmp_path / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "fakescope.cli", "serve", "--port", "0", "--model", "fast"],
                                stderr=fh, stdout=fh, env=env)
    try:
        port = _banner_port(log, proc)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /api/scan HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=bb\r\n"
                      b"Content-Length: 100000\r\n\r\n--bb\r\nContent-Disposition: form-data; name=\"files\"; "
                      b"filename=\"a.jpg\"\r\n\r\n" + b"x" * 5000)
            time.sleep(0.3)
        busy = subprocess.run([sys.executable, "-m", "fakescope.cli", "serve", "--port", str(port)],
                              capture_output=True, text=True, env=env, timeout=60)
        assert busy.returncode == 2 and "already in use" in busy.stderr and "web app on" not in busy.stderr
        _wait_log(log, "disconnected")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    text = log.read_text()
    assert "Traceback" not in text and "ClientDisconnect" not in text
    assert sum("disconnect" in line for line in text.splitlines()) == 1


def _banner_port(log: Path, proc: subprocess.Popen) -> int:
    end = time.monotonic() + 120
    while time.monotonic() < end:
        m = re.search(r"web app on http://127\.0\.0\.1:(\d+)/", log.read_text())
        if m and "startup complete" in log.read_text():
            return int(m.group(1))
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    raise AssertionError("server did not start: " + log.read_text())


def _wait_log(log: Path, text: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while text not in log.read_text():
        assert time.monotonic() < end, log.read_text()
        time.sleep(0.05)

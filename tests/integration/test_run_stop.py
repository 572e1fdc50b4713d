"""`lien run` stops when asked (SIGTERM from systemd or docker, Ctrl-C) even while a platform cannot be reached.

A real `lien run` process with a Matrix homeserver on a loopback port where nothing listens (the connection is
refused at once, so lien retries its login with backoff), and a real SQLite file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(path: Path, text: str, within: float) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        log = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged within {within}s:\n{log}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_while_the_homeserver_is_unreachable_ends_the_run_at_once(tmp_path: Path, sig: int) -> None:
    config = tmp_path / "lien.toml"
    config.write_text(
        f'[storage]\npath = "{tmp_path / "lien.db"}"\n\n'
        '[matrix]\nhomeserver = "http://127.0.0.1:1"\nuser_id = "@lien:localhost"\n'
        'access_token_env = "LIEN_TEST_MATRIX_TOKEN"\n',
        encoding="utf-8",
    )
    log = tmp_path / "run.log"
    env = {**os.environ, "LIEN_TEST_MATRIX_TOKEN": "not-a-secret-that-matters"}
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config)], cwd=ROOT,
                                   env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            _wait_for(log, "retry 2 in", within=60)  # lien is in its login backoff loop
            process.send_signal(sig)
            code = process.wait(timeout=30)  # without the early stop: never (the login retries forever)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = log.read_text(encoding="utf-8")
    assert code == 0, text
    assert "stopping before lien was fully started" in text
    # The failure is told in one short line, and nothing is left open or unexplained.
    assert "Cannot connect to host 127.0.0.1:1" in text and "ConnectionKey(" not in text
    assert "Traceback" not in text and "Unclosed" not in text
    assert "not-a-secret-that-matters" not in text

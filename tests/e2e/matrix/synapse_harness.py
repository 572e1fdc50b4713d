"""A throwaway Synapse homeserver on loopback for end-to-end tests: config, start, stop, user registration.

No pytest here, so a script can drive it too. Synapse runs as a subprocess of the current interpreter (it is a
dev dependency), on a free 127.0.0.1 port, with a temporary SQLite database, no federation, no presence and no
media repository. Message rate limits stay at Synapse's defaults (0.2/s, burst 10) so a test can meet real 429s;
every user registered with `rate_limited=False` (the default) is exempted through the admin API instead.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVER_NAME = "localhost"
#: Synapse's own defaults for `rc_message`, which the config leaves untouched.
DEFAULT_MESSAGE_RATE = (0.2, 10)
_HIGH = {"per_second": 1000, "burst_count": 1000}


@dataclass(frozen=True, slots=True)
class TestUser:
    """A registered account with a ready access token and device."""

    __test__ = False  # not a pytest test class, despite the name

    user_id: str
    localpart: str
    password: str
    access_token: str
    device_id: str


class SynapseError(RuntimeError):
    """Synapse did not start, or an admin call failed; the message carries the log tail or the response."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signing_key() -> str:
    seed = os.urandom(32)
    return "ed25519 a_test " + base64.b64encode(seed).decode().rstrip("=") + "\n"


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM Synapse if the test process dies without cleaning up (e.g. SIGKILL)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class SynapseServer:
    """One Synapse process and its files under `workdir`."""

    def __init__(self, workdir: Path, *, port: int | None = None, server_name: str = SERVER_NAME) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.server_name = server_name
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.shared_secret = secrets.token_hex(24)
        self.config_path = workdir / "homeserver.yaml"
        self.log_path = workdir / "homeserver.log"
        self.startup_seconds: float | None = None
        self.admin: TestUser | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout: Any = None

    # -- configuration -------------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The homeserver config: loopback only, SQLite, no federation/presence/media, high non-message limits."""
        w = self.workdir
        return {
            "server_name": self.server_name,
            "pid_file": str(w / "homeserver.pid"),
            "listeners": [{
                "port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}],
            }],
            "database": {"name": "sqlite3", "args": {"database": str(w / "homeserver.db")}},
            "log_config": str(w / "log.yaml"),
            "media_store_path": str(w / "media"),
            "enable_media_repo": False,
            "url_preview_enabled": False,
            "signing_key_path": str(w / "signing.key"),
            "registration_shared_secret": self.shared_secret,
            "macaroon_secret_key": secrets.token_hex(24),
            "form_secret": secrets.token_hex(24),
            "report_stats": False,
            "enable_metrics": False,
            "enable_registration": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "federation_sender_instances": [],
            "presence": {"enabled": False},
            # rc_message is left at Synapse's default on purpose (see the module docstring).
            "rc_login": {"address": _HIGH, "account": _HIGH, "failed_attempts": _HIGH},
            "rc_registration": _HIGH,
            "rc_joins": {"local": _HIGH, "remote": _HIGH},
            "rc_joins_per_room": _HIGH,
            "rc_invites": {"per_room": _HIGH, "per_user": _HIGH, "per_issuer": _HIGH},
            "rc_room_creation": _HIGH,
            "rc_admin_redaction": _HIGH,
        }

    def _log_config(self) -> dict[str, Any]:
        return {
            "version": 1,
            "formatters": {"precise": {"format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                                                 "%(request)s - %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "formatter": "precise",
                                  "filename": str(self.log_path), "encoding": "utf8"}},
            "loggers": {"synapse.storage.SQL": {"level": "WARNING"},
                        "synapse.access": {"level": "WARNING"}},
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }

    def write_files(self) -> None:
        """Write the config, log config and signing key (JSON is valid YAML)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "media").mkdir(exist_ok=True)
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        (self.workdir / "log.yaml").write_text(json.dumps(self._log_config(), indent=2))
        (self.workdir / "signing.key").write_text(_signing_key())

    # -- process -------------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Synapse's process id while it runs."""
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 120.0) -> float:
        """Start Synapse and wait until `/_matrix/client/versions` answers; returns the seconds it took."""
        self.write_files()
        self._stdout = (self.workdir / "stdout.log").open("wb")
        started = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.workdir, stdout=self._stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, which then stops Synapse itself
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        try:
            self._wait_ready(started + timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        self.admin = self.register("admin", admin=True)
        return self.startup_seconds

    def _wait_ready(self, deadline: float) -> None:
        url = self.base_url + "/_matrix/client/versions"
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise SynapseError(f"Synapse exited with {self._proc.returncode} during start\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise SynapseError(f"Synapse did not answer {url} in time\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop Synapse by its own process id: SIGTERM, then SIGKILL if it lingers."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of Synapse's stdout and log file, for failure messages."""
        out = []
        for path in (self.workdir / "stdout.log", self.log_path):
            if path.exists():
                out.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)

    # -- HTTP ----------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> dict[str, Any]:
        """A JSON request to the homeserver; raises SynapseError on an HTTP error."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise SynapseError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from exc

    def register(self, localpart: str, *, admin: bool = False, rate_limited: bool = False,
                 message_rate: tuple[int, int] | None = None) -> TestUser:
        """Register a user through the shared-secret admin API; exempt from rate limits unless `rate_limited`.

        `message_rate=(per_second, burst)` gives the user its own message limit instead (whole numbers, as the
        admin API takes them): real 429s, but quicker to wait out than Synapse's default 0.2/s.
        """
        password = secrets.token_urlsafe(16)
        nonce = self.request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        reply = self.request("POST", "/_synapse/admin/v1/register", {
            "nonce": nonce, "username": localpart, "password": password, "admin": admin,
            "mac": mac.hexdigest(),
        })
        user = TestUser(user_id=reply["user_id"], localpart=localpart, password=password,
                        access_token=reply["access_token"], device_id=reply["device_id"])
        if not rate_limited or message_rate is not None:
            per_second, burst = message_rate or (0, 0)  # 0, 0 means no limit at all
            admin_token = (self.admin or user).access_token
            quoted = urllib.parse.quote(user.user_id)
            self.request("POST", f"/_synapse/admin/v1/users/{quoted}/override_ratelimit",
                         {"messages_per_second": per_second, "burst_count": burst}, token=admin_token)
        return user

"""Who may use the dashboard: password hashing, sessions, CSRF tokens, login rate limit.

Safe by default: the server binds 127.0.0.1; any other address needs a password hash in the
settings (scrypt, never the password). Every browser gets a session cookie (HttpOnly,
SameSite=Strict) holding a random id; the session carries a CSRF token the pages send back in
a header with every control, so another site cannot drive the controls even on localhost.
Sessions live in memory: a restart logs everyone out, which is the safe direction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import deque
from dataclasses import dataclass, field

from singularity.dashboard.settings import HASH_SCHEME
from singularity.errors import ConfigError

SESSION_COOKIE = "singularity_session"
CSRF_HEADER = "x-csrf-token"
_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~50 ms and 16 MiB per check


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): what ``dashboard.password_hash`` holds."""
    if not password:
        raise ConfigError("the dashboard password is empty")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"{HASH_SCHEME}${_N}${_R}${_P}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != HASH_SCHEME:
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                             p=int(p), dklen=len(want), maxmem=64 * 2**20)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, password_hash: str | None) -> None:
    """Refuse to serve off-localhost without a password (ConfigError, exit 2)."""
    if not is_loopback(host) and not password_hash:
        raise ConfigError(
            f"refusing to bind the dashboard to {host}: set dashboard.password_hash first "
            "(singularity dashboard --hash-password), or bind 127.0.0.1")


@dataclass
class Session:
    csrf: str
    expires: float
    authenticated: bool = False


@dataclass
class Sessions:
    """In-memory sessions keyed by a random cookie value."""

    lifetime_s: float
    max_sessions: int = 10_000
    """Oldest sessions are dropped beyond this (anonymous sessions cost a page load each)."""
    _by_id: dict[str, Session] = field(default_factory=dict)

    def new(self, *, authenticated: bool = False) -> tuple[str, Session]:
        self._expire()
        while len(self._by_id) >= self.max_sessions:
            del self._by_id[next(iter(self._by_id))]  # dicts keep insertion order: the oldest
        sid = secrets.token_urlsafe(32)
        sess = Session(csrf=secrets.token_urlsafe(32), expires=time.time() + self.lifetime_s,
                       authenticated=authenticated)
        self._by_id[sid] = sess
        return sid, sess

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        sess = self._by_id.get(sid)
        if sess is None or sess.expires < time.time():
            self._by_id.pop(sid, None)
            return None
        return sess

    def drop(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def _expire(self) -> None:
        now = time.time()
        for sid in [k for k, s in self._by_id.items() if s.expires < now]:
            del self._by_id[sid]


@dataclass
class LoginLimiter:
    """At most ``attempts`` failed logins per client address in a sliding ``window_s``."""

    attempts: int
    window_s: float
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0 = now)."""
        q = self._failures.get(client)
        if not q:
            return 0.0
        now = time.monotonic()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if len(q) < self.attempts:
            return 0.0
        return max(0.0, q[0] + self.window_s - now)

    def failed(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))

"""`fader login --sso <provider>`: sign in through an OpenID provider from a terminal.

The CLI is a native app in the sense of RFC 8252: it listens on the IPv4 loopback address on a
port the system picks (``http://127.0.0.1:<port>/callback``), asks the Fader server to begin a
sign-in for that redirect URI with the PKCE S256 challenge of a verifier it keeps, and opens
the provider's page in the browser (or prints it: ``--no-browser``, for a browser on another
screen of the same machine). When the provider sends the browser back, the listener takes the
``code`` and ``state`` and the CLI redeems them with the server in a POST, together with the
verifier: the answer is a personal token (12 hours), kept like a password login's. The token
never appears in a URL, a browser history or a log; the code the browser carried is worthless
without the verifier. See :mod:`fader_server.api.sso` for the server's side.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import threading
import webbrowser
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from fader_server.cli import logins
from fader_server.cli.client import AdminApi, api_path
from fader_server.cli.eval import InputError
from fader_server.cli.output import note

WAIT_SECONDS = 600.0
"""As long as the server keeps a sign-in open (10 minutes)."""


@dataclass(frozen=True, slots=True)
class Answer:
    code: str | None
    state: str | None
    error: str | None
    description: str | None


class _Listener(ThreadingHTTPServer):
    """The loopback listener: takes the first ``GET /callback`` and nothing else."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Callback)
        self.answer: Answer | None = None
        self.arrived = threading.Event()

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/callback"


class _Callback(BaseHTTPRequestHandler):
    server: _Listener

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/callback" or self.server.arrived.is_set():
            self._page(404, "Not here", "This address only takes one answer from a sign-in.")
            return
        query = {k: v[0][:4096] for k, v in parse_qs(parts.query).items() if v}
        answer = Answer(
            query.get("code"),
            query.get("state"),
            query.get("error"),
            query.get("error_description"),
        )
        self.server.answer = answer
        self.server.arrived.set()
        if answer.error:
            self._page(400, "Sign-in not completed", "Return to the terminal to see why.")
        else:
            self._page(200, "Signed in", "Fader is finishing the sign-in: return to the terminal.")

    def _page(self, status: int, title: str, text: str) -> None:
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head><body><main><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
            "</main></body></html>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the request line holds the authorization code."""


def _verifier() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)  # 64 characters of the RFC 7636 alphabet
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_in(server: str, provider: str, *, open_browser: bool) -> logins.Login:
    """Run the whole exchange and return what `fader login` keeps."""
    verifier, challenge = _verifier()
    listener = _Listener()
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    try:
        with AdminApi(server, None) as api:
            started = api.post(
                api_path("auth", "sso", provider, "start"),
                {"redirect_uri": listener.redirect_uri, "code_challenge": challenge},
            ).body
            url = str(started["authorization_url"])
            note(f"To sign in with {provider}, open this address in your browser:\n\n  {url}\n")
            if open_browser and webbrowser.open(url):
                note("(opened in your browser)")
            note("Waiting for the sign-in to finish (10 minutes at most)...")
            if not listener.arrived.wait(WAIT_SECONDS) or listener.answer is None:
                raise InputError("the sign-in did not finish within 10 minutes; run it again")
            answer = listener.answer
            if answer.error or not answer.code or not answer.state:
                said = f" ({answer.description[:300]})" if answer.description else ""
                raise InputError(
                    f"{provider} did not sign you in: {answer.error or 'no code'}{said}"
                )
            issued = api.post(
                api_path("auth", "sso", provider, "token"),
                {
                    "flow": started["flow"],
                    "state": answer.state,
                    "code": answer.code,
                    "code_verifier": verifier,
                },
            ).body
    finally:
        listener.shutdown()
        listener.server_close()
    return logins.Login(issued["token"], None, issued["id"], issued.get("expires_at"))

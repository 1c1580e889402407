"""Request handling: / describes the service, /healthz says it is up."""

import json
from http.server import BaseHTTPRequestHandler

from service import __version__

try:  # installed by the image's deps stage; optional when run from a checkout
    from packaging.version import Version
except ImportError:  # pragma: no cover
    Version = None


def describe() -> dict:
    info = {"service": "python-service", "version": __version__}
    if Version is not None:
        info["release"] = not Version(__version__).is_prerelease
    return info


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"ok": True})
        elif self.path == "/":
            self._send(200, describe())
        else:
            self._send(404, {"error": f"no such path: {self.path}"})

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args) -> None:
        print(f"{self.address_string()} {fmt % args}", flush=True)

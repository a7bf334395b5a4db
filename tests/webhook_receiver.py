"""A webhook receiver for the tests: it verifies every delivery with the `standardwebhooks`
package from PyPI (an implementation independent of Vidfarm's) and records what arrived.

Usage: python3 webhook_receiver.py [PORT [SECRET...]]   (prints its port, then serves)
  POST /_config {"secrets": [...], "mode": {"status": 200, "headers": {...}}}  configure
  GET  /_received                                                            what arrived
Any other POST is a delivery: 401 if no secret verifies it, else the configured status.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

STATE = {"secrets": sys.argv[2:], "received": [], "mode": {"status": 200, "headers": {}}}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/_config":
            config = json.loads(body)
            with LOCK:
                STATE["secrets"].extend(config.get("secrets", []))
                if "mode" in config:
                    STATE["mode"] = config["mode"]
            return self.reply(200, {})
        headers = {k.lower(): v for k, v in self.headers.items()}
        with LOCK:
            secrets, mode = list(STATE["secrets"]), dict(STATE["mode"])
        verified, problem = False, "no secret configured"
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
                break
            except WebhookVerificationError as e:
                problem = str(e)
        status = mode["status"] if verified else 401
        with LOCK:
            STATE["received"].append({
                "path": self.path,
                "id": headers.get("webhook-id"),
                "verified": verified,
                "answered": status,
                "body": json.loads(body),
            })
        self.reply(status, {} if verified else {"error": problem}, mode.get("headers", {}) if verified else {})

    def do_GET(self):
        with LOCK:
            received = list(STATE["received"])
        self.reply(200, received)

    def reply(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.allow_reuse_address = True
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()

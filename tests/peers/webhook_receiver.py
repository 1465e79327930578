"""A webhook receiver that verifies Standard Webhooks signatures with the
`standardwebhooks` package (PyPI) and records each verified delivery.

Usage: python3 webhook_receiver.py PORT SECRET OUT_FILE

Each verified delivery appends one JSON line to OUT_FILE:
{"id": webhook-id, "type": ..., "asset_id": ..., "status": ...}.
A delivery whose signature does not verify is answered 400 and recorded
with "verified": false.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

PORT, SECRET, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]
hook = Webhook(SECRET)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = hook.verify(body, headers)
            record = {
                "id": headers["webhook-id"],
                "type": payload["type"],
                "asset_id": payload["data"]["id"],
                "status": payload["data"]["status"],
                "verified": True,
            }
            code = 204
        except Exception as exc:  # any verification failure
            record = {"verified": False, "error": str(exc)}
            code = 400
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(f"listening on http://127.0.0.1:{PORT}", flush=True)
server.serve_forever()

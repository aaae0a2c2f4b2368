"""A stand-in Application Insights ingestion endpoint for the benchmarks: takes every POST to /v2.1/track,
counts the items, answers as the real endpoint does when it accepts all; GET /count says how many so far.

    python bench/ingestion_sink.py PORT        (127.0.0.1 only; standard library only)
"""
import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

items = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept-alive, as the exporter's requests session expects

    def do_POST(self):
        global items
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        # Request items only (each post also carries the exporter's resource envelope); parsing the JSON would
        # cost this VM more than the router does.
        count = body.count(b'"RequestData"')
        items += count
        self._answer(json.dumps({"itemsReceived": count, "itemsAccepted": count, "errors": []}).encode())

    def do_GET(self):
        self._answer(json.dumps({"items": items}).encode())

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()

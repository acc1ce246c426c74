"""A local SMTP sink: accepts every mail (RFC 5321 subset: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
QUIT), keeps it in memory, and serves what it received over HTTP, so tests and developers can read the
mails the platform sends. Standard library only (`smtpd` is gone from Python 3.12).

HTTP on 127.0.0.1:
    GET /messages            every mail received, oldest first, as JSON
    DELETE /messages         forget them
    POST /fail {"count": n, "code": 451, "stage": "mail"}
                             answer the next n mail transactions with that reply code (4xx: the sender
                             should retry later; 5xx: permanent) at MAIL FROM, or at RCPT TO with
                             "stage": "rcpt" (a refused recipient), to exercise the sender
    POST /fail {"address": "someone@x.example", "code": 550}
                             refuse that one recipient at RCPT TO from now on (a mailbox that does not
                             exist: the platform takes it as a hard bounce)

Prints ``HTTP 127.0.0.1:PORT`` then ``READY 127.0.0.1:PORT`` (the SMTP port) once both are bound.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import signal
import socketserver
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_MESSAGE_BYTES = 10 * 1024 * 1024


class Mailbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._failures: list[tuple[int, str]] = []
        self.transactions = 0
        self._refused: dict[str, int] = {}  # address -> the reply code refusing it at RCPT TO

    def add(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> None:
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        body = parsed.get_body(preferencelist=("plain", "html")) if parsed.is_multipart() else parsed
        text = str(body.get_content()).replace("\r\n", "\n") if body is not None else ""
        with self._lock:
            self._messages.append(
                {
                    "id": uuid.uuid4().hex,
                    "mail_from": mail_from,
                    "rcpt_to": rcpt_to,
                    "subject": str(parsed.get("Subject", "")),
                    "from": str(parsed.get("From", "")),
                    "to": str(parsed.get("To", "")),
                    "message_id": str(parsed.get("Message-ID", "")),
                    "headers": {k: str(v) for k, v in parsed.items()},
                    "text": text,
                    "received_at": datetime.now(UTC).isoformat(),
                }
            )

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._failures.clear()
            self._refused.clear()

    def fail_next(self, count: int, code: int, stage: str) -> None:
        with self._lock:
            self._failures.extend([(code, stage)] * count)

    def refuse(self, address: str, code: int) -> None:
        with self._lock:
            self._refused[address.lower()] = code

    def failure(self, stage: str, address: str | None = None) -> int | None:
        """A reply code to fail this command with, or None to accept it."""
        with self._lock:
            if stage == "mail":
                self.transactions += 1
            if address is not None and address.lower() in self._refused:
                return self._refused[address.lower()]
            if self._failures and self._failures[0][1] == stage:
                return self._failures.pop(0)[0]
            return None


class SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpServer

    def reply(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def handle(self) -> None:
        self.reply("220 cmp-smtp-sink ESMTP ready")
        mail_from: str | None = None
        rcpt_to: list[str] = []
        while True:
            raw = self.rfile.readline(4096)
            if not raw:
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            verb, _, argument = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.wfile.write(b"250-cmp-smtp-sink\r\n250-8BITMIME\r\n250 SIZE %d\r\n" % MAX_MESSAGE_BYTES)
                self.wfile.flush()
            elif verb == "HELO":
                self.reply("250 cmp-smtp-sink")
            elif verb == "MAIL":
                failure = self.server.mailbox.failure("mail")
                if failure is not None:
                    self.reply(f"{failure} {'Try again later' if failure < 500 else 'Refused'} (injected)")
                    continue
                mail_from, rcpt_to = _address(argument), []
                self.reply("250 OK")
            elif verb == "RCPT":
                if mail_from is None:
                    self.reply("503 MAIL first")
                    continue
                refused = self.server.mailbox.failure("rcpt", _address(argument))
                if refused is not None:
                    self.reply(f"{refused} No such user here (injected)")
                    continue
                rcpt_to.append(_address(argument))
                self.reply("250 OK")
            elif verb == "DATA":
                if mail_from is None or not rcpt_to:
                    self.reply("503 MAIL and RCPT first")
                    continue
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                data = self._data()
                if data is None:
                    return
                self.server.mailbox.add(mail_from, rcpt_to, data)
                mail_from, rcpt_to = None, []
                self.reply("250 OK queued")
            elif verb == "RSET":
                mail_from, rcpt_to = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")

    def _data(self) -> bytes | None:
        lines: list[bytes] = []
        size = 0
        while True:
            raw = self.rfile.readline(MAX_MESSAGE_BYTES)
            if not raw:
                return None
            if raw in (b".\r\n", b".\n"):
                return b"".join(lines)
            if raw.startswith(b".."):
                raw = raw[1:]  # dot-stuffing (RFC 5321 4.5.2)
            size += len(raw)
            if size <= MAX_MESSAGE_BYTES:
                lines.append(raw)


def _address(argument: str) -> str:
    """`FROM:<a@b>` or `TO:<a@b> SIZE=..` -> a@b."""
    value = argument.partition(":")[2].strip()
    if value.startswith("<"):
        value = value[1:].partition(">")[0]
    return value.split(" ")[0]


class SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], mailbox: Mailbox) -> None:
        super().__init__(address, SmtpHandler)
        self.mailbox = mailbox


def http_server(address: tuple[str, int], mailbox: Mailbox) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/messages":
                self._json(200, {"messages": mailbox.messages()})
            else:
                self._json(404, {"error": "not found"})

        def do_DELETE(self) -> None:
            if self.path.rstrip("/") == "/messages":
                mailbox.clear()
                self._json(200, {"deleted": True})
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/fail":
                self._json(404, {"error": "not found"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if isinstance(body.get("address"), str) and "@" in body["address"]:
                    code = int(body.get("code", 550))
                    if not 500 <= code <= 599:
                        self._json(400, {"error": "a refused address takes a 5xx code"})
                        return
                    mailbox.refuse(body["address"], code)
                    self._json(200, {"refusing": body["address"], "code": code})
                    return
                count, code = int(body.get("count", 1)), int(body.get("code", 451))
                stage = str(body.get("stage", "mail"))
            except (ValueError, AttributeError):
                self._json(400, {"error": 'send {"count": n, "code": 4xx or 5xx}'})
                return
            if not 400 <= code <= 599 or count < 0 or stage not in ("mail", "rcpt"):
                self._json(400, {"error": "code must be 4xx or 5xx, count >= 0, stage mail or rcpt"})
                return
            mailbox.fail_next(count, code, stage)
            self._json(200, {"failing_next": count, "code": code, "stage": stage})

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(address, Handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulators.smtp_sink", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525, help="SMTP port (0: any free port)")
    parser.add_argument("--http-port", type=int, default=0, help="HTTP port (0: any free port)")
    args = parser.parse_args(argv)
    mailbox = Mailbox()
    smtp = SmtpServer((args.host, args.port), mailbox)
    web = http_server((args.host, args.http_port), mailbox)
    for server in (smtp, web):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"HTTP {args.host}:{web.server_address[1]}", flush=True)
    print(f"READY {args.host}:{smtp.server_address[1]}", flush=True)
    stop.wait()
    smtp.shutdown()
    web.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

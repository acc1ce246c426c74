"""The local SMTP sink driven by smtplib, as the Notification API's sender drives it: it keeps what it
accepts, and refuses what it is told to, the way a relay would."""

from __future__ import annotations

import json
import smtplib
import threading
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from emulators.smtp_sink import Mailbox, SmtpServer, http_server


@pytest.fixture
def sink() -> Iterator[tuple[int, str]]:
    mailbox = Mailbox()
    smtp = SmtpServer(("127.0.0.1", 0), mailbox)
    web = http_server(("127.0.0.1", 0), mailbox)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (smtp, web)]
    for thread in threads:
        thread.start()
    try:
        yield smtp.server_address[1], f"http://127.0.0.1:{web.server_address[1]}"
    finally:
        for server in (smtp, web):
            server.shutdown()
            server.server_close()


def mail(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "cmp@x.example", to, f"hello {to}"
    message.set_content("hi")
    return message


def post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def test_a_refused_address_is_refused_every_time_and_others_are_kept(sink: tuple[int, str]) -> None:
    port, http = sink
    assert post(f"{http}/fail", {"address": "Ghost@X.example", "code": 550})["code"] == 550
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as smtp:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.send_message(mail("ghost@x.example"))
            assert refused.value.recipients["ghost@x.example"][0] == 550
        smtp.send_message(mail("ann@x.example"))
    with urllib.request.urlopen(f"{http}/messages", timeout=5) as response:
        kept = json.loads(response.read())["messages"]
    assert [m["rcpt_to"] for m in kept] == [["ann@x.example"]]


def test_a_refusal_needs_a_permanent_code(sink: tuple[int, str]) -> None:
    _, http = sink
    with pytest.raises(urllib.error.HTTPError) as error:
        post(f"{http}/fail", {"address": "ghost@x.example", "code": 451})
    assert error.value.code == 400

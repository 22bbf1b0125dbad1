"""A local Yandex Message Queue: the SQS-compatible form API on 127.0.0.1, for the devstack.

Requests are what `embedding_pipeline/clients/message_queue.py` and `devstack/queue_trigger.py`
send: `POST /` (or to the queue URL) with a form body (`Action`, `Version=2012-11-05`, `QueueUrl`),
SigV4-signed for the service `sqs`. Every request's signature is computed again here with the one
configured key pair; a foreign key answers 403 `InvalidClientTokenId`, a wrong signature 403
`SignatureDoesNotMatch`, each as SQS's XML error. The actions and their XML replies are
devstack/ymq_actions.py; the queues themselves (visibility, redelivery, dead-letter queues, delays)
devstack/ymq_queues.py.

    server = start_queue_server(access_key="local-admin", secret_key="...")
    dlq = server.create_queue("jobs-dlq")
    url = server.create_queue("jobs", visibility_timeout_s=1, dead_letter_queue=dlq, max_receive_count=3)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from email.message import Message as Headers
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

from devstack.ymq_actions import error_reply, perform
from devstack.ymq_queues import QueueFault, Queues

ACCOUNT = "local"  # in the queue URL and ARN, where Yandex has the folder id
_SIGNED_WITH = "AWS4-HMAC-SHA256 "


class QueueServer:
    """A running local Message Queue; `queues` is its state, for tests that look inside."""

    def __init__(self, http: ThreadingHTTPServer, queues: Queues) -> None:
        self._http = http
        self.queues = queues
        host, port = http.server_address[:2]
        self.endpoint = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=http.serve_forever, args=(0.05,), name="ymq-server", daemon=True
        )  # a short poll interval: stopping waits for one
        self._thread.start()

    def create_queue(
        self,
        name: str,
        *,
        visibility_timeout_s: int = 30,
        dead_letter_queue: str | None = None,
        max_receive_count: int = 3,
    ) -> str:
        """Create a queue (or configure the one of that name); return its URL. `dead_letter_queue` is
        the URL of the queue that messages received more than `max_receive_count` times move to."""
        attributes = {"VisibilityTimeout": str(visibility_timeout_s)}
        if dead_letter_queue is not None:
            arn = self.queues.by_url(dead_letter_queue).arn
            policy = {"deadLetterTargetArn": arn, "maxReceiveCount": max_receive_count}
            attributes["RedrivePolicy"] = json.dumps(policy)
        return self.queues.create(self.endpoint, name, attributes).url

    def counts(self, queue_url: str) -> dict[str, int]:
        """{"visible", "in_flight", "delayed"}: the queue's messages by state."""
        return self.queues.counts(self.queues.by_url(queue_url))

    def bodies(self, queue_url: str) -> list[str]:
        """The bodies of every message the queue holds, in send order, whatever their state."""
        return self.queues.bodies(self.queues.by_url(queue_url))

    def stop(self) -> None:
        self.queues.close()  # long polls return at once, empty
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5.0)


def start_queue_server(
    *, access_key: str, secret_key: str, host: str = "127.0.0.1", port: int = 0
) -> QueueServer:
    """Serve in a thread; port 0 takes any free port (see `QueueServer.endpoint`)."""
    queues = Queues(ACCOUNT)

    class Handler(_Handler):
        keys = (access_key, secret_key)
        state = queues

    http = ThreadingHTTPServer((host, port), Handler)
    http.daemon_threads = True  # a long poll must not hold up stopping
    return QueueServer(http, queues)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    keys: tuple[str, str]
    state: Queues

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = urlsplit(self.path)
        form = dict(parse_qsl(target.query, keep_blank_values=True))
        form.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
        request_id = str(uuid.uuid4())
        endpoint = f"http://{self.headers.get('Host') or '127.0.0.1'}"
        if target.path.strip("/") and "QueueUrl" not in form:  # posted to the queue's URL itself
            form["QueueUrl"] = endpoint + target.path
        try:
            verify_signature(self.command, self.path, self.headers, body, self.keys)
            self._send(200, perform(self.state, form, endpoint, request_id))
        except QueueFault as fault:
            status = 403 if isinstance(fault, AuthFault) else 400
            self._send(status, error_reply(fault, request_id))

    do_GET = do_POST  # SQS takes the same parameters in a GET's query string

    def _send(self, status: int, xml: str) -> None:
        data = xml.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a line per request would drown the stack's own log (and no header is ever logged)."""


class AuthFault(QueueFault):
    """Answered with 403, as SQS answers an unknown key or a bad signature."""


def verify_signature(method: str, path: str, headers: Headers, body: bytes, keys: tuple[str, str]) -> None:
    """Compute the request's SigV4 signature again with the configured secret; raise if it differs."""
    header = headers.get("Authorization") or ""
    fields = dict(
        part.strip().split("=", 1) for part in header.removeprefix(_SIGNED_WITH).split(",") if "=" in part
    )
    if (
        not header.startswith(_SIGNED_WITH)
        or not {"Credential", "SignedHeaders", "Signature"} <= fields.keys()
    ):
        raise AuthFault("MissingAuthenticationToken", "The request must be signed with SigV4.")
    key_id, _, scope = fields["Credential"].partition("/")
    if not hmac.compare_digest(key_id.encode(), keys[0].encode()):
        raise AuthFault("InvalidClientTokenId", "The security token included in the request is invalid.")
    target = urlsplit(path)
    query = sorted(
        (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
        for k, v in parse_qsl(target.query, keep_blank_values=True)
    )
    signed = fields["SignedHeaders"].split(";")
    canonical = "\n".join(
        [
            method,
            quote(target.path or "/", safe="/-_.~"),
            "&".join(f"{k}={v}" for k, v in query),
            "".join(f"{name}:{(headers.get(name) or '').strip()}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    to_sign = f"AWS4-HMAC-SHA256\n{headers.get('x-amz-date') or ''}\n{scope}\n{digest}"
    signing_key = f"AWS4{keys[1]}".encode()
    for step in scope.split("/"):  # day, region, service, "aws4_request"
        signing_key = hmac.new(signing_key, step.encode(), hashlib.sha256).digest()
    expected = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    scope_ok = len(scope.split("/")) == 4 and scope.split("/")[2:] == ["sqs", "aws4_request"]
    if not scope_ok or "host" not in signed or not hmac.compare_digest(expected, fields["Signature"]):
        raise AuthFault(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )

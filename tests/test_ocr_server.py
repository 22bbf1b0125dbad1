"""Functional: the local stand-in for Yandex Vision OCR (devstack/ocr_server.py) over HTTP on loopback,
and how `make run` wires it in (devstack/local_ocr.py).

The server reads with the real engine where the point is recognition: an image and a two-page
scanned PDF rendered here with Pillow and a DejaVu font, read back by tesseract. That needs
`tesseract` with Russian and English: without it these tests are skipped on a laptop (the reason
says how to install it) and fail in CI (`CI` set), where .ci/run installs it. The protocol's edges
(401, 400s, 404s, an operation still pending or failed) use stand-in engines: tiny shell scripts in
the engine's place, so a pending operation stays pending for exactly as long as the test wants.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from devstack.local_env import LOCAL_API_KEY, ocr_defaults
from devstack.local_ocr import start_local_ocr
from devstack.ocr_engine import INSTALL_HINT, Tesseract, find_tesseract
from devstack.ocr_server import OcrServer
from devstack.running import RunningStack
from embedpipe.services import point_at
from tests.support import run_python
from tests.test_formats import _pdf as text_layer_pdf
from tests.test_local_stack import Stack, _leaving_nothing_behind, stack_env

AUTH = {"Authorization": "Api-Key local-no-key-needed", "x-folder-id": "local"}
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.fixture(scope="module")
def engine() -> Tesseract:
    found = find_tesseract()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"no tesseract with rus and eng in CI: .ci/run installs it ({INSTALL_HINT})")
        pytest.skip(f"no tesseract with rus and eng: {INSTALL_HINT}")
    return found


@pytest.fixture
def tesseract(engine: Tesseract) -> Iterator[OcrServer]:
    with OcrServer(engine) as server:
        yield server


def fake_engine(tmp_path: Path, script: str) -> Tesseract:
    """An executable in tesseract's place: `script` is the shell after it has read its stdin."""
    path = tmp_path / "fake-tesseract"
    path.write_text(f"#!/bin/sh\ncat >/dev/null\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return Tesseract(str(path), "fake")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[OcrServer]:
    """A server whose engine waits for `release` to exist (20 s at most), then says 'released text'."""
    release = tmp_path / "release"
    script = f'for _ in $(seq 400); do [ -e "{release}" ] && break; sleep 0.05; done\necho "released text"'
    with OcrServer(fake_engine(tmp_path, script)) as server:
        yield server


def rendered(*lines: str) -> Image.Image:
    """A scan as a person makes one: black text on white, 32 px DejaVu Sans."""
    if not FONT.exists():
        pytest.fail(f"{FONT} is missing: apt-get install fonts-dejavu-core (.ci/run does)")
    font = ImageFont.truetype(str(FONT), 32)
    image = Image.new("L", (1000, 80 + 70 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((40, 40 + 70 * number), line, font=font, fill=0)
    return image


def encoded(image: Image.Image, kind: str) -> str:
    out = io.BytesIO()
    image.save(out, kind)
    return base64.b64encode(out.getvalue()).decode()


def request(mime_type: str, content: str, model: str = "page") -> dict[str, Any]:
    return {"mimeType": mime_type, "languageCodes": ["ru", "en"], "model": model, "content": content}


def wait_done(server: OcrServer, operation_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        operation: dict[str, Any] = httpx.get(f"{server.operations_url}/{operation_id}", headers=AUTH).json()
        if operation["done"]:
            return operation
        time.sleep(0.1)
    raise AssertionError(f"operation {operation_id} not done in {timeout_s} s")


@pytest.mark.parametrize(("mime_type", "kind"), [("image/png", "PNG"), ("image/jpeg", "JPEG")])
def test_an_image_is_read_by_the_real_engine(tesseract: OcrServer, mime_type: str, kind: str) -> None:
    image = rendered("Договор поставки № 17", "Invoice total 4417")
    reply = httpx.post(
        f"{tesseract.ocr_url}/recognizeText",
        json=request(mime_type, encoded(image, kind)),
        headers=AUTH,
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    result = reply.json()["result"]
    assert result["page"] == "0"
    annotation = result["textAnnotation"]
    assert (annotation["width"], annotation["height"]) == ("1000", "220")
    assert annotation["markdown"] == ""  # only the markdown models fill it
    text = annotation["fullText"].casefold()
    for word in ("договор", "поставки", "17", "invoice", "4417"):  # OCR may garble the rest
        assert word in text, annotation["fullText"]
    assert text.endswith("\n")
    assert "\n\n" not in text  # a line per line, as Vision OCR's fullText


def test_a_scanned_pdf_is_read_page_by_page_in_order(tesseract: OcrServer) -> None:
    first, second = rendered("Страница первая", "First page"), rendered("Страница вторая", "Second page")
    pdf = io.BytesIO()
    first.save(pdf, "PDF", save_all=True, append_images=[second], resolution=150)
    content = base64.b64encode(pdf.getvalue()).decode()

    started = httpx.post(
        f"{tesseract.ocr_url}/recognizeTextAsync", json=request("application/pdf", content), headers=AUTH
    )
    assert started.status_code == 200, started.text
    assert started.json()["done"] is False
    operation = wait_done(tesseract, started.json()["id"])
    assert operation["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}
    assert "error" not in operation

    reply = httpx.get(
        f"{tesseract.ocr_url}/getRecognition", params={"operationId": operation["id"]}, headers=AUTH
    )
    assert reply.status_code == 200, reply.text
    pages = [json.loads(line)["result"] for line in reply.text.splitlines()]
    assert [page["page"] for page in pages] == ["0", "1"]
    texts = [page["textAnnotation"]["fullText"].casefold() for page in pages]
    assert "первая" in texts[0]
    assert "first" in texts[0]
    assert "вторая" in texts[1]
    assert "second" in texts[1]


def test_a_pdf_page_with_a_text_layer_is_read_from_it(tmp_path: Path) -> None:
    content = base64.b64encode(text_layer_pdf(["First page text"])).decode()
    with OcrServer(fake_engine(tmp_path, "exit 1")) as server:  # the engine would fail: not asked
        reply = httpx.post(
            f"{server.ocr_url}/recognizeText",
            json=request("application/pdf", content, "markdown"),
            headers=AUTH,
        )
    assert reply.status_code == 200, reply.text
    annotation = reply.json()["result"]["textAnnotation"]
    assert annotation["fullText"] == annotation["markdown"] == "First page text\n"


@pytest.mark.parametrize(
    "path", ["/ocr/v1/recognizeText", "/ocr/v1/recognizeTextAsync", "/ocr/v1/getRecognition", "/operations/x"]
)
def test_a_request_without_authorization_gets_401(served: OcrServer, path: str) -> None:
    content = encoded(Image.new("L", (8, 8), 255), "PNG")
    if path.startswith("/ocr/v1/recognize"):
        reply = httpx.post(served.url + path, json=request("image/png", content))
    else:
        reply = httpx.get(served.url + path, params={"operationId": "x"})
    assert reply.status_code == 401
    assert reply.json()["code"] == 16


PNG = encoded(Image.new("L", (8, 8), 255), "PNG")


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (request("image/tiff", PNG), "unsupported mimeType 'image/tiff'"),
        (request("image/png", "not base64!"), "not valid base64"),
        (request("image/jpeg", PNG), "the content is PNG, not JPEG"),
        (request("image/png", base64.b64encode(b"no image here").decode()), "not a readable PNG"),
        (request("application/pdf", base64.b64encode(b"%PDF-1.4 broken").decode()), "not a readable PDF"),
        ({"mimeType": "image/png"}, "content is required"),
        ("{not json", "not JSON"),
    ],
)
def test_content_vision_ocr_refuses_gets_400(served: OcrServer, body: Any, says: str) -> None:
    for method in ("recognizeText", "recognizeTextAsync"):
        raw = body if isinstance(body, str) else json.dumps(body)
        reply = httpx.post(f"{served.ocr_url}/{method}", content=raw, headers=AUTH)
        assert reply.status_code == 400, reply.text
        assert reply.json()["code"] == 3
        assert says in reply.json()["message"]


def test_recognize_text_takes_a_pdf_of_one_page(served: OcrServer) -> None:
    content = base64.b64encode(text_layer_pdf(["one", "two"])).decode()
    reply = httpx.post(
        f"{served.ocr_url}/recognizeText", json=request("application/pdf", content), headers=AUTH
    )
    assert reply.status_code == 400
    assert "use recognizeTextAsync" in reply.json()["message"]


def test_an_unknown_operation_is_404(served: OcrServer) -> None:
    reply = httpx.get(f"{served.operations_url}/nosuchop", headers=AUTH)
    assert (reply.status_code, reply.json()["code"]) == (404, 5)
    assert reply.json()["message"] == "Operation nosuchop not found"
    reply = httpx.get(f"{served.ocr_url}/getRecognition", params={"operationId": "nosuchop"}, headers=AUTH)
    assert (reply.status_code, reply.json()["code"]) == (404, 5)


def test_an_operation_is_pending_until_the_engine_is_done(served: OcrServer, tmp_path: Path) -> None:
    started = httpx.post(f"{served.ocr_url}/recognizeTextAsync", json=request("image/png", PNG), headers=AUTH)
    operation_id = started.json()["id"]
    assert httpx.get(f"{served.operations_url}/{operation_id}", headers=AUTH).json()["done"] is False
    early = httpx.get(f"{served.ocr_url}/getRecognition", params={"operationId": operation_id}, headers=AUTH)
    assert (early.status_code, early.json()["code"]) == (404, 5)

    (tmp_path / "release").touch()
    assert "response" in wait_done(served, operation_id, timeout_s=10)
    done = httpx.get(f"{served.ocr_url}/getRecognition", params={"operationId": operation_id}, headers=AUTH)
    assert done.status_code == 200
    assert json.loads(done.text)["result"]["textAnnotation"]["fullText"] == "released text\n"


def test_an_engine_failure_ends_the_operation_with_an_error(tmp_path: Path) -> None:
    with OcrServer(fake_engine(tmp_path, "echo 'Error during processing.' >&2; exit 1")) as server:
        started = httpx.post(
            f"{server.ocr_url}/recognizeTextAsync", json=request("image/png", PNG), headers=AUTH
        )
        operation = wait_done(server, started.json()["id"], timeout_s=10)
        result = httpx.get(
            f"{server.ocr_url}/getRecognition", params={"operationId": operation["id"]}, headers=AUTH
        )
        sync = httpx.post(f"{server.ocr_url}/recognizeText", json=request("image/png", PNG), headers=AUTH)
    assert operation["error"]["code"] == 3
    assert "tesseract failed (exit 1): Error during processing." in operation["error"]["message"]
    assert "response" not in operation
    assert (result.status_code, result.json()["code"]) == (400, 3)
    assert (sync.status_code, sync.json()["code"]) == (400, 3)


def test_an_engine_without_russian_is_not_used(tmp_path: Path) -> None:
    fake = fake_engine(tmp_path, "")
    Path(fake.binary).write_text('#!/bin/sh\necho "List of available languages (2):"\necho eng\necho osd\n')
    assert find_tesseract(which=lambda _name: fake.binary) is None
    assert find_tesseract(which=lambda _name: None) is None


# The stack's wiring.


def test_without_the_engine_ocr_is_off_and_the_stack_says_how_to_install_it() -> None:
    ocr = start_local_ocr({}, find=lambda: None)
    assert ocr.server is None
    assert ocr.settings == {"OCR_ENABLED": "false"}
    assert "scans are parked as unreadable" in ocr.summary
    assert "sudo apt-get install tesseract-ocr tesseract-ocr-rus" in ocr.summary
    assert "brew install tesseract tesseract-lang" in ocr.summary


def test_with_the_engine_the_function_is_pointed_at_the_stand_in(tmp_path: Path) -> None:
    ocr = start_local_ocr({"OCR_ENABLED": "false"}, find=lambda: fake_engine(tmp_path, "echo hi"))
    try:
        assert ocr.server is not None
        assert ocr.settings == {  # OCR_ENABLED is the user's
            "OCR_URL": f"{ocr.server.url}/ocr/v1",
            "OCR_OPERATIONS_URL": f"{ocr.server.url}/operations",
        }
        assert ocr.server.ocr_url in ocr.summary
        reply = httpx.post(
            f"{ocr.settings['OCR_URL']}/recognizeText", json=request("image/png", PNG), headers=AUTH
        )
        assert reply.json()["result"]["textAnnotation"]["fullText"] == "hi\n"
    finally:
        ocr.stop()


@pytest.mark.parametrize("chosen", ["OCR_URL", "OCR_OPERATIONS_URL"])
def test_a_users_ocr_is_kept_and_nothing_starts(chosen: str) -> None:
    def never() -> Tesseract:
        raise AssertionError("the engine was looked for")

    ocr = start_local_ocr({chosen: "https://ocr.api.cloud.yandex.net/ocr/v1"}, find=never)
    assert (ocr.server, ocr.settings) == (None, {})
    assert "yours" in ocr.summary
    assert ocr_defaults({chosen: "https://x"}, "http://127.0.0.1:1", local_credentials=True) == {}


def test_the_command_line_turns_ocr_off_only_with_the_local_placeholder_key() -> None:
    """`embedpipe invoke` without a running stand-in: a user's own key may reach Yandex's OCR."""
    assert ocr_defaults({"YC_API_KEY": LOCAL_API_KEY}, None, local_credentials=True) == {
        "OCR_ENABLED": "false"
    }
    assert ocr_defaults({"YC_API_KEY": "AQVN-mine"}, None, local_credentials=False) == {}


def test_embedpipe_reads_scans_with_the_running_stacks_ocr_or_parks_them(tmp_path: Path) -> None:
    """`embedpipe invoke` runs index.handler in its own process: it finds the stand-in in stack.json."""
    RunningStack(os.getpid(), 18333, 18555, 18080, "b", ocr_url="http://127.0.0.1:18557").write(tmp_path)
    with_stack = {"LOCAL_DATA_DIR": str(tmp_path)}
    point_at(with_stack, needs_storage=False, needs_embeddings=False)
    assert with_stack["OCR_URL"] == "http://127.0.0.1:18557/ocr/v1"
    assert with_stack["OCR_OPERATIONS_URL"] == "http://127.0.0.1:18557/operations"

    alone = {"LOCAL_DATA_DIR": str(tmp_path / "none")}
    point_at(alone, needs_storage=False, needs_embeddings=False)
    assert alone["OCR_ENABLED"] == "false"
    assert "OCR_URL" not in alone

    mine = {"LOCAL_DATA_DIR": str(tmp_path / "none"), "YC_API_KEY": "AQVN-mine", "YC_FOLDER_ID": "b1g"}
    point_at(mine, needs_storage=False, needs_embeddings=False)
    assert not [name for name in mine if name.startswith("OCR_")]  # Yandex's OCR, the product's default


def test_a_taken_ocr_port_stops_the_stack_before_it_starts_anything(tmp_path: Path) -> None:
    _ports, env = stack_env(tmp_path / "run")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        refused = run_python("-m", "embedpipe", "run", env=env | {"LOCAL_OCR_PORT": str(taken)}, timeout_s=30)
    assert refused.returncode == 2
    assert f"port {taken} (LOCAL_OCR_PORT) already in use" in refused.stderr
    assert "LOCAL_OCR_PORT=" in refused.stderr  # the one to move, with a free port to move it to
    assert not (tmp_path / "run").exists()


def test_the_stack_without_tesseract_runs_and_says_so_in_one_line(tmp_path: Path) -> None:
    """`make run` on a machine without the Russian model (a tesseract first on PATH that lacks it)."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    (fakes / "tesseract").write_text('#!/bin/sh\necho "List of available languages (1):"\necho eng\n')
    (fakes / "tesseract").chmod(0o755)
    path = f"{fakes}{os.pathsep}{os.environ['PATH']}"
    for running in _leaving_nothing_behind(Stack(tmp_path / "run", env={"PATH": path})):
        running.wait_for("Ctrl-C stops everything")
        hint = [line for line in running.output if "tesseract-ocr-rus" in line]
        assert len(hint) == 1, "".join(running.output)
        assert hint[0].strip().startswith("OCR             off: no tesseract with rus and eng on PATH")
        assert json.loads((tmp_path / "run" / "stack.json").read_text())["ocr_url"] is None
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=30) == 0


def test_the_stack_with_tesseract_serves_it(engine: Tesseract, tmp_path: Path) -> None:
    for running in _leaving_nothing_behind(Stack(tmp_path / "run")):
        running.wait_for("Ctrl-C stops everything")
        ocr_url = json.loads((tmp_path / "run" / "stack.json").read_text())["ocr_url"]
        assert any(f"OCR             {ocr_url}/ocr/v1" in line for line in running.output)
        image = rendered("Invoice total 4417")
        reply = httpx.post(
            f"{ocr_url}/ocr/v1/recognizeText", json=request("image/png", encoded(image, "PNG")), headers=AUTH
        )
        assert "4417" in reply.json()["result"]["textAnnotation"]["fullText"]
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=30) == 0

"""The CLI's small HTTP client against a unix-socket server that answers canned bytes:
content-length, chunked (split anywhere), body up to EOF, HEAD, 204, read(n), uploads."""

from __future__ import annotations

import io
import os
import socket
import threading

import pytest

from pallet.cli.pallet.uhttp import Connection


def serve(path: str, answer: bytes, split: int = 0) -> list[bytes]:
    """Accept one connection, keep what the client sent, answer `answer` (in pieces of
    `split` bytes when set) and close."""
    got: list[bytes] = []
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def run() -> None:
        conn, _ = srv.accept()
        conn.settimeout(0.3)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except TimeoutError:
            pass
        got.append(data)
        step = split or len(answer) or 1
        for i in range(0, len(answer), step):
            conn.sendall(answer[i:i + step])
        conn.close()
        srv.close()

    threading.Thread(target=run, daemon=True).start()
    return got


@pytest.fixture
def sock(tmp_path):
    return os.path.join(tmp_path, "s")


def roundtrip(sock: str, answer: bytes, method: str = "GET", split: int = 0,
              body=None, headers=None):
    got = serve(sock, answer, split)
    c = Connection(sock, timeout=5)
    c.request(method, "/v1.41/x?a=1", body=body, headers=headers)
    r = c.getresponse()
    return c, r, got


def test_content_length_body_and_headers(sock):
    c, r, _ = roundtrip(sock, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
    assert r.status == 200 and r.getheader("x-a") == "b" and r.read() == b"hello"
    assert r.read1() == b""
    c.close()


@pytest.mark.parametrize("split", [0, 1, 3, 7])
def test_chunked_body_split_anywhere(sock, split):
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"4\r\n{\"a\"\r\n6;ext=1\r\n: 1}\n{\r\n0\r\n\r\n")
    c, r, _ = roundtrip(sock, answer, split=split)
    assert r.read() == b'{"a": 1}\n{'
    c.close()


def test_read_n_and_body_until_eof(sock):
    c, r, _ = roundtrip(sock, b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100_000, split=4096)
    assert len(r.read(70_000)) == 70_000 and len(r.read()) == 30_000
    c.close()


def test_head_and_no_content_have_no_body(sock):
    c, r, _ = roundtrip(sock, b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", method="HEAD")
    assert r.status == 200 and r.read() == b""
    c.close()


def test_truncated_body_is_an_error(sock):
    c, r, _ = roundtrip(sock, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(ConnectionError):
        r.read()
    c.close()


def test_not_http_is_refused(sock):
    got = serve(sock, b"SSH-2.0-x\r\n\r\n")
    c = Connection(sock, timeout=5)
    c.request("GET", "/")
    with pytest.raises(ConnectionError, match="not an HTTP response"):
        c.getresponse()
    c.close()
    assert got


def test_requests_as_sent(sock):
    c, r, got = roundtrip(sock, b"HTTP/1.1 204 No Content\r\n\r\n", method="POST",
                          body=b'{"a":1}', headers={"Content-Type": "application/json"})
    assert r.status == 204 and r.read() == b""
    c.close()
    head, _, body = got[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1.41/x?a=1 HTTP/1.1\r\n")
    assert b"Content-Length: 7" in head and body == b'{"a":1}'


def test_file_body_goes_chunked(sock):
    c, r, got = roundtrip(sock, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", method="PUT",
                          body=io.BytesIO(b"a" * 70_000))
    assert r.status == 200
    c.close()
    head, _, body = got[0].partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body.startswith(b"10000\r\n") and body.endswith(b"0\r\n\r\n")
    assert len(body) == 70_000 + len(b"10000\r\n\r\n") + len(b"1170\r\n\r\n") + 5


@pytest.mark.parametrize("s", ["a b/c?d=e&f+g", "ünï ☃", "~_.-", '{"a": [1]}', "x%y", ""])
def test_url_quoting_is_urllib_s(s):
    """The client quotes without importing urllib.parse, the same way."""
    from urllib.parse import quote as uquote
    from urllib.parse import urlencode as uurlencode

    from pallet.cli.pallet.client import Client, quote, urlencode

    assert quote(s) == uquote(s) and quote(s, safe="") == uquote(s, safe="")
    q = {"k y": s, "n": 5}
    assert urlencode(q) == uurlencode(q) and urlencode(list(q.items())) == uurlencode(q)
    assert Client.url("/x", {"a": True, "b": None, "s": s}) == \
        "/v1.41/x?" + uurlencode({"a": "1", "s": s})

#!/usr/bin/env python3
"""fake_server.py: a scriptable HTTP/1.1 server for the client tests.

Usage: fake_server.py [PORT]   (0 or none: pick a port; it is printed as
the first line of stdout). Listens on 127.0.0.1 only. Python stdlib, raw
sockets, so it can misbehave on purpose.

Control API (never recorded, never consumes the script):
  POST /_script    body: JSON list of responses, appended to the queue
  POST /_default   body: JSON response used when the queue is empty; with
                   "path": only for requests to that path
  POST /_reset     clears queue, default and recorded requests
  GET  /_requests  JSON list of recorded requests:
                   {method, path, query, target, headers: {lowercase: value},
                    body, conn, client_port}
Every other request is recorded, then answered by the next scripted
response (or the default: 200 with an empty body). A response is a JSON
object with optional fields:
  status (200), reason (standard phrase), body (""), headers ({}),
  delay (seconds before answering), drop (close without answering),
  truncate (send only N bytes of the body, then close),
  huge (stream N bytes of body, Content-Length N), close (Connection: close),
  no_length (no Content-Length: the body ends when the connection closes),
  raw (send these bytes instead of a response, then close),
  path (only a request to this path takes it; others skip it: lets a
        test script a server whose requests interleave, as a janitor's do).
"""
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse

lock = threading.Lock()
queue = []
default = {}
path_defaults = {}
recorded = []
conn_counter = [0]


def reason_for(status):
    return http.client.responses.get(status, "Unknown")


def read_request(f):
    line = f.readline(65536)
    if not line:
        return None
    while line in (b"\r\n", b"\n"):
        line = f.readline(65536)
        if not line:
            return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3:
        raise ValueError("bad request line %r" % line)
    method, target, _version = parts
    headers = {}
    while True:
        h = f.readline(65536)
        if not h:
            return None
        h = h.decode("latin-1").rstrip("\r\n")
        if h == "":
            break
        name, _, value = h.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if "content-length" in headers:
        n = int(headers["content-length"])
        body = f.read(n)
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().strip(), 16)
            if size == 0:
                f.readline()
                break
            body += f.read(size)
            f.readline()
    return method, target, headers, body


def send_plain(sock, status, body, content_type="application/json"):
    data = body.encode()
    head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        status, reason_for(status), content_type, len(data))
    sock.sendall(head.encode() + data)


def control(sock, method, path, body):
    global default
    with lock:
        if path == "/_script" and method == "POST":
            items = json.loads(body or b"[]")
            if isinstance(items, dict):
                items = [items] if items else []
            queue.extend(items)
            send_plain(sock, 200, "{}")
        elif path == "/_default" and method == "POST":
            spec = json.loads(body or b"{}")
            if "path" in spec:
                path_defaults[spec["path"]] = spec
            else:
                default = spec
            send_plain(sock, 200, "{}")
        elif path == "/_reset" and method == "POST":
            queue.clear()
            recorded.clear()
            path_defaults.clear()
            default = {}
            send_plain(sock, 200, "{}")
        elif path == "/_requests":
            send_plain(sock, 200, json.dumps(recorded))
        else:
            send_plain(sock, 404, "unknown control path", "text/plain")


def respond(sock, spec):
    """Sends one scripted response; returns False when the connection must close."""
    if spec.get("delay"):
        time.sleep(float(spec["delay"]))
    if spec.get("drop"):
        return False
    if "raw" in spec:
        sock.sendall(spec["raw"].encode("utf-8", "surrogateescape"))
        return False
    status = int(spec.get("status", 200))
    reason = spec.get("reason", reason_for(status))
    body = spec.get("body", "").encode("utf-8", "surrogateescape")
    huge = int(spec.get("huge", 0))
    length = huge if huge else len(body)
    head = "HTTP/1.1 %d %s\r\n" % (status, reason)
    for k, v in spec.get("headers", {}).items():
        head += "%s: %s\r\n" % (k, v)
    if spec.get("no_length"):
        spec = dict(spec, close=True)
    elif "Content-Length" not in spec.get("headers", {}):
        head += "Content-Length: %d\r\n" % length
    if spec.get("close"):
        head += "Connection: close\r\n"
    sock.sendall(head.encode("latin-1") + b"\r\n")
    if huge:
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent < huge:
                n = min(len(chunk), huge - sent)
                sock.sendall(chunk[:n])
                sent += n
        except OSError:
            return False
        return not spec.get("close")
    if "truncate" in spec:
        sock.sendall(body[:int(spec["truncate"])])
        return False
    sock.sendall(body)
    return not spec.get("close")


def next_response(path):
    """The first queued response for this path (or for any path); else the
    path's default, else the default. Called with the lock held."""
    for i, spec in enumerate(queue):
        if spec.get("path", path) == path:
            return queue.pop(i)
    return path_defaults.get(path, default)


def serve_conn(sock, addr):
    with lock:
        conn_counter[0] += 1
        conn_id = conn_counter[0]
    f = sock.makefile("rb")
    try:
        while True:
            req = read_request(f)
            if req is None:
                return
            method, target, headers, body = req
            u = urllib.parse.urlsplit(target)
            if u.path.startswith("/_"):
                control(sock, method, u.path, body)
                continue
            with lock:
                recorded.append({
                    "method": method, "path": u.path, "query": u.query,
                    "target": target, "headers": headers,
                    "body": body.decode("utf-8", "replace"),
                    "conn": conn_id, "client_port": addr[1],
                })
                spec = next_response(u.path)
            if not respond(sock, spec):
                return
    except (OSError, ValueError):
        return
    finally:
        try:
            f.close()
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)
    while True:
        sock, addr = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve_conn, args=(sock, addr), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""serve_client.py -- raw-socket clients for test_serve_hostile.sh: what curl
cannot do (slow and partial requests, many connections from several loopback
addresses, malformed heads), and a strict check that output is UTF-8 JSON.

  slow PORT N NSRC          open N connections from 127.0.0.2.. (NSRC of them),
                            each with half a request head; then GET /healthz on
                            a fresh connection from 127.0.0.1; prints
                            "opened N" and "healthz STATUS"
  trickle PORT SECONDS      send a head one header line every 0.2 s; prints
                            "closed after S s: FIRST-LINE" (or "open after ...")
  slowbody PORT SECONDS     a complete head, then the body a byte every 0.2 s
  idle PORT SECONDS         one request, then keep the connection idle
  raw PORT FILE             send FILE's bytes, print the whole response
  then PORT FILE            on one keep-alive connection: GET /healthz, read
                            its answer, then send FILE's bytes; print all that
                            came after the first answer
  thentrickle PORT SECONDS  GET /healthz, its answer, then a second head one
                            header line every 0.2 s, as trickle
  kept PORT PID N SECONDS   N keep-alive connections (from 127.0.1.10.., 200 an
                            address): GET /healthz each, its answer, then half a
                            second head trickled a byte every 0.5 s; prints the
                            server's "threads T rss KB" 1.5 s after, "healthz
                            STATUS" of a fresh connection, then after SECONDS
                            "408s K of N" (how many were answered 408)
  reuse PORT PAUSE          GET /healthz, PAUSE s idle, GET /v1/databases on the
                            same connection; prints both status lines
  ends PORT FILE            send FILE's bytes (a keep-alive request), read 3 s at
                            most; prints the status line and "EOF" when the
                            server closed the connection, else "open"
  jsonlines FILE            every line of FILE is UTF-8 JSON (exit 1 if not)
"""
import json
import socket
import sys
import time


def connect(port, src="127.0.0.1", timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


def read_all(s, limit=1 << 20):
    out = b""
    try:
        while len(out) < limit:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def status_of(port, path="/healthz"):
    s = connect(port, timeout=20)
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    first = read_all(s).split(b"\r\n", 1)[0].decode("latin1")
    s.close()
    return first.split(" ")[1] if first.startswith("HTTP/") else "none"


def until_closed(s, seconds, feed):
    """Calls feed(s) every 0.2 s until the server closes s or seconds pass."""
    t0 = time.time()
    got = b""
    s.settimeout(0.2)
    while time.time() - t0 < seconds:
        try:
            d = s.recv(65536)
            if not d:
                break
            got += d
            continue
        except socket.timeout:
            pass
        except ConnectionResetError:
            break
        try:
            feed(s)
        except (BrokenPipeError, ConnectionResetError):
            break
    else:
        print("open after %.1f s" % (time.time() - t0))
        return
    first = got.split(b"\r\n", 1)[0].decode("latin1")
    print("closed after %.1f s: %s" % (time.time() - t0, first))


def first_answer(s):
    """Sends GET /healthz on s and reads exactly its answer."""
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    head, rest = got.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(rest) < length:
        rest += s.recv(65536)
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit("the first answer: " + head.decode("latin1"))


def read_answer(s, mark_close=False):
    """Reads one answer with a Content-Length from s; returns its status line
    (with " close" after it when mark_close and it says Connection: close)."""
    got = b""
    while b"\r\n\r\n" not in got:
        d = s.recv(65536)
        if not d:
            return "closed"
        got += d
    head, rest = got.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0]
    while len(rest) < length:
        rest += s.recv(65536)
    closes = any(l.lower().replace(b" ", b"") == b"connection:close" for l in head.split(b"\r\n"))
    return head.split(b"\r\n", 1)[0].decode("latin1") + (" close" if mark_close and closes else "")


def proc_status(pid):
    """The server's thread count and resident memory (KB)."""
    f = dict(l.split(":", 1) for l in open("/proc/%s/status" % pid).read().splitlines() if ":" in l)
    return "threads %s rss %s" % (f["Threads"].strip(), f["VmRSS"].strip().split()[0])


def main():
    cmd = sys.argv[1]
    if cmd == "slow":
        port, n, nsrc = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
        socks = []
        for i in range(n):
            s = connect(port, "127.0.0.%d" % (2 + i % nsrc))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
            socks.append(s)
        print("opened %d" % len(socks))
        print("healthz %s" % status_of(port))
        for s in socks:
            s.close()
    elif cmd == "trickle":
        port, secs = int(sys.argv[2]), float(sys.argv[3])
        s = connect(port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        until_closed(s, secs, lambda s: s.sendall(b"X-a: b\r\n"))
    elif cmd == "slowbody":
        port, secs = int(sys.argv[2]), float(sys.argv[3])
        s = connect(port)
        s.sendall(b"POST /v1/sql HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n{\"sql\":\"")
        until_closed(s, secs, lambda s: s.sendall(b"a"))
    elif cmd == "idle":
        port, secs = int(sys.argv[2]), float(sys.argv[3])
        s = connect(port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(0.3)
        s.recv(65536)  # the answer
        until_closed(s, secs, lambda s: None)
    elif cmd == "raw":
        port = int(sys.argv[2])
        s = connect(port)
        s.sendall(open(sys.argv[3], "rb").read())
        sys.stdout.write(read_all(s).decode("latin1"))
    elif cmd == "then":
        port = int(sys.argv[2])
        s = connect(port)
        first_answer(s)
        s.sendall(open(sys.argv[3], "rb").read())
        sys.stdout.write(read_all(s).decode("latin1"))
    elif cmd == "thentrickle":
        port, secs = int(sys.argv[2]), float(sys.argv[3])
        s = connect(port)
        first_answer(s)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        until_closed(s, secs, lambda s: s.sendall(b"X-a: b\r\n"))
    elif cmd == "kept":
        port, pid, n, secs = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        socks = []
        for i in range(n):  # each sends its request at once: opening thousands takes seconds on a busy machine
            s = connect(port, "127.0.%d.%d" % (1 + i // 200, 10 + i % 200), timeout=30)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            socks.append(s)
        for s in socks:
            status = read_answer(s)
            if not status.startswith("HTTP/1.1 200"):
                sys.exit("a first answer: " + status)
        for s in socks:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: lo")
        time.sleep(1.5)
        print(proc_status(pid))
        print("healthz %s" % status_of(port))
        t0 = time.time()
        while time.time() - t0 < secs:
            time.sleep(0.5)
            for s in socks:
                try:
                    s.send(b"c")
                except OSError:
                    pass
        got = 0
        for s in socks:
            s.settimeout(30)  # until the server's deadline: it answers 408 and closes
            got += read_all(s).startswith(b"HTTP/1.1 408")
            s.close()
        print("408s %d of %d" % (got, n))
    elif cmd == "reuse":
        # a request, a pause, then three more at once after it: each answer's
        # status line, and "close" for one that says Connection: close
        port, pause = int(sys.argv[2]), float(sys.argv[3])
        s = connect(port)
        for i, path in enumerate(["/healthz", "/v1/databases", "/healthz", "/v1/databases"]):
            if i == 1:
                time.sleep(pause)
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
            print(read_answer(s, mark_close=True))
    elif cmd == "ends":
        port = int(sys.argv[2])
        s = connect(port, timeout=3)
        s.sendall(open(sys.argv[3], "rb").read())
        got, end = b"", "open"
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    end = "EOF"
                    break
                got += d
        except (socket.timeout, ConnectionResetError):
            pass
        print(got.split(b"\r\n", 1)[0].decode("latin1"), end)
    elif cmd == "jsonlines":
        bad = 0
        for no, line in enumerate(open(sys.argv[2], "rb").read().splitlines(), 1):
            try:
                json.loads(line.decode("utf-8", errors="strict"))
            except (UnicodeDecodeError, ValueError) as e:
                print("line %d is not UTF-8 JSON: %s" % (no, e))
                bad = 1
        sys.exit(bad)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()

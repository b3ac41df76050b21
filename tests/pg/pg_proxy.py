#!/usr/bin/env python3
"""pg_proxy.py -- a TCP relay to the test cluster, so that a test can take
PostgreSQL away from a running client (killing the relay ends every relayed
connection and refuses new ones) without stopping the shared cluster.

  pg_proxy.py PORTFILE TARGET_PORT   listen on 127.0.0.1:0, write the port to
                                     PORTFILE, relay each connection to
                                     127.0.0.1:TARGET_PORT until killed
"""
import os
import socket
import sys
import threading


def pump(src, dst):
    try:
        while True:
            d = src.recv(65536)
            if not d:
                break
            dst.sendall(d)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    portfile, target = sys.argv[1], int(sys.argv[2])
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(lsock.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    while True:
        c, _ = lsock.accept()
        u = socket.create_connection(("127.0.0.1", target))
        threading.Thread(target=pump, args=(c, u), daemon=True).start()
        threading.Thread(target=pump, args=(u, c), daemon=True).start()


if __name__ == "__main__":
    main()

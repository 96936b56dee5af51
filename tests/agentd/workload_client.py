"""Calls agentd's Workload API with the stock Python gRPC client; prints JSON.

Usage: workload_client.py STUB_DIR unix:///path/to.sock COMMAND [ARGS...]
  x509 N                 the first N FetchX509SVID messages
  x509-bundles           the first FetchX509Bundles message
  jwt-bundles            the first FetchJWTBundles message
  jwt SPIFFE_ID AUD...   FetchJWTSVID (SPIFFE_ID "" for every identity)
  jwt-each SPIFFE_ID PREFIX FIRST END
                         FetchJWTSVID once per audience PREFIX<i>, FIRST <= i < END, on one
                         channel: {"tokens": {i: token}}, or the first failure and its "at"
  validate AUD TOKEN     ValidateJWTSVID
  calls N THREADS AUD    N calls on one channel from THREADS threads, as a busy workload makes
                         them: in turn FetchX509SVID and FetchX509Bundles (the first message
                         read, then the stream cancelled) and FetchJWTSVID for AUD.
                         {"calls": N, "failed": k, "first_failure": ..., "calls_per_second": r}
  no-header              every method without the workload.spiffe.io header
  watch [KIND]           one line per message of FetchX509SVID (KIND x509, the default),
                         FetchX509Bundles (x509-bundles) or FetchJWTBundles (jwt-bundles),
                         then one line for the end
Bytes are base64. A failed call prints {"code": ..., "details": ...}.
"""
import base64
import json
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
import workload_pb2 as pb  # noqa: E402
import workload_pb2_grpc as pb_grpc  # noqa: E402

HEADER = [("workload.spiffe.io", "true")]
TIMEOUT = 10


def b64(data):
    return base64.b64encode(data).decode()


def x509_message(response):
    return {
        "svids": [{"spiffe_id": s.spiffe_id, "x509_svid": b64(s.x509_svid),
                   "x509_svid_key": b64(s.x509_svid_key), "bundle": b64(s.bundle),
                   "hint": s.hint} for s in response.svids],
        "federated_bundles": {k: b64(v) for k, v in response.federated_bundles.items()},
    }


def error(e):
    return {"code": e.code().name, "details": e.details()}


def first(stream):
    try:
        message = next(stream)
        stream.cancel()
        return message
    except grpc.RpcError as e:
        return error(e)


def many_calls(stub, calls, threads, audience):
    lock = threading.Lock()
    state = {"next": 0, "failed": 0, "first_failure": None}

    def fail(why):
        with lock:
            state["failed"] += 1
            if state["first_failure"] is None:
                state["first_failure"] = why

    def fetch_first_and_cancel(stream, what):
        try:
            message = next(stream)
            stream.cancel()
            if not message.ListFields():
                fail(what + ": an empty first message")
        except grpc.RpcError as e:
            fail(what + ": " + json.dumps(error(e)))
        except StopIteration:
            fail(what + ": the stream ended without a message")

    def work():
        while True:
            with lock:
                i = state["next"]
                if i >= calls:
                    return
                state["next"] += 1
            if i % 3 == 0:
                fetch_first_and_cancel(stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=HEADER, timeout=TIMEOUT),
                                       "FetchX509SVID")
            elif i % 3 == 1:
                fetch_first_and_cancel(stub.FetchX509Bundles(pb.X509BundlesRequest(), metadata=HEADER,
                                                             timeout=TIMEOUT), "FetchX509Bundles")
            else:
                try:
                    response = stub.FetchJWTSVID(pb.JWTSVIDRequest(audience=[audience]), metadata=HEADER,
                                                 timeout=TIMEOUT)
                    if not response.svids:
                        fail("FetchJWTSVID: no SVID")
                except grpc.RpcError as e:
                    fail("FetchJWTSVID: " + json.dumps(error(e)))

    started = time.monotonic()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return {"calls": calls, "failed": state["failed"], "first_failure": state["first_failure"],
            "calls_per_second": round(calls / (time.monotonic() - started))}


def main():
    command, args = sys.argv[3], sys.argv[4:]
    with grpc.insecure_channel(sys.argv[2]) as channel:
        stub = pb_grpc.SpiffeWorkloadAPIStub(channel)
        if command == "x509":
            stream = stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=HEADER, timeout=TIMEOUT)
            out = {"messages": []}
            try:
                for response in stream:
                    out["messages"].append(x509_message(response))
                    if len(out["messages"]) == int(args[0]):
                        stream.cancel()
                        break
            except grpc.RpcError as e:
                out.update(error(e))
        elif command == "x509-bundles":
            m = first(stub.FetchX509Bundles(pb.X509BundlesRequest(), metadata=HEADER, timeout=TIMEOUT))
            out = m if isinstance(m, dict) else {"bundles": {k: b64(v) for k, v in m.bundles.items()}}
        elif command == "jwt-bundles":
            m = first(stub.FetchJWTBundles(pb.JWTBundlesRequest(), metadata=HEADER, timeout=TIMEOUT))
            out = m if isinstance(m, dict) else {"bundles": {k: v.decode() for k, v in m.bundles.items()}}
        elif command == "jwt":
            try:
                response = stub.FetchJWTSVID(pb.JWTSVIDRequest(spiffe_id=args[0], audience=args[1:]),
                                             metadata=HEADER, timeout=TIMEOUT)
                out = {"svids": [{"spiffe_id": s.spiffe_id, "svid": s.svid, "hint": s.hint}
                                 for s in response.svids]}
            except grpc.RpcError as e:
                out = error(e)
        elif command == "jwt-each":
            prefix, tokens = args[1], {}
            out = {"tokens": tokens}
            for i in range(int(args[2]), int(args[3])):
                try:
                    response = stub.FetchJWTSVID(pb.JWTSVIDRequest(spiffe_id=args[0], audience=[prefix + str(i)]),
                                                 metadata=HEADER, timeout=TIMEOUT)
                    tokens[str(i)] = response.svids[0].svid
                except grpc.RpcError as e:
                    out.update(error(e))
                    out["at"] = i
                    break
        elif command == "calls":
            out = many_calls(stub, int(args[0]), int(args[1]), args[2])
        elif command == "validate":
            try:
                response = stub.ValidateJWTSVID(pb.ValidateJWTSVIDRequest(audience=args[0], svid=args[1]),
                                                metadata=HEADER, timeout=TIMEOUT)
                out = {"spiffe_id": response.spiffe_id,
                       "claims": json_format.MessageToDict(response.claims)}
            except grpc.RpcError as e:
                out = error(e)
        elif command == "no-header":
            out = {}
            calls = {
                "FetchX509SVID": lambda: next(stub.FetchX509SVID(pb.X509SVIDRequest(), timeout=TIMEOUT)),
                "FetchX509Bundles": lambda: next(stub.FetchX509Bundles(pb.X509BundlesRequest(), timeout=TIMEOUT)),
                "FetchJWTBundles": lambda: next(stub.FetchJWTBundles(pb.JWTBundlesRequest(), timeout=TIMEOUT)),
                "FetchJWTSVID": lambda: stub.FetchJWTSVID(pb.JWTSVIDRequest(audience=["a"]), timeout=TIMEOUT),
                "ValidateJWTSVID": lambda: stub.ValidateJWTSVID(
                    pb.ValidateJWTSVIDRequest(audience="a", svid="x.y.z"), timeout=TIMEOUT),
            }
            for name, call in calls.items():
                try:
                    call()
                    out[name] = {"code": "OK"}
                except grpc.RpcError as e:
                    out[name] = error(e)
        elif command == "watch":
            kind = args[0] if args else "x509"
            if kind == "x509":
                stream, show = stub.FetchX509SVID(pb.X509SVIDRequest(), metadata=HEADER), x509_message
            elif kind == "x509-bundles":
                stream = stub.FetchX509Bundles(pb.X509BundlesRequest(), metadata=HEADER)
                show = lambda m: {"bundles": {k: b64(v) for k, v in m.bundles.items()}}  # noqa: E731
            else:
                stream = stub.FetchJWTBundles(pb.JWTBundlesRequest(), metadata=HEADER)
                show = lambda m: {"bundles": {k: v.decode() for k, v in m.bundles.items()}}  # noqa: E731
            try:
                for response in stream:
                    print(json.dumps(show(response)), flush=True)
                print(json.dumps({"code": "OK"}), flush=True)
            except grpc.RpcError as e:
                print(json.dumps(error(e)), flush=True)
            return
        else:
            raise SystemExit("unknown command " + command)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Drives the Echo service with the stock Python gRPC client; prints one JSON object.

Usage: grpc_echo_client.py STUB_DIR unix:///path/to.sock
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
import echo_pb2  # noqa: E402
import echo_pb2_grpc  # noqa: E402


def main():
    out = {}
    with grpc.insecure_channel(sys.argv[2]) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)

        reply, call = stub.Say.with_call(echo_pb2.EchoRequest(text="hi"),
                                         metadata=[("x-who", "alice")], timeout=10)
        out["say"] = reply.text
        out["say_initial"] = dict(call.initial_metadata())
        out["say_trailing"] = {k: v for k, v in call.trailing_metadata()}
        out["say_code"] = call.code().name

        try:
            stub.Say(echo_pb2.EchoRequest(code=7, message="no identity issued: 100% sure"),
                     timeout=10)
            out["error_code"] = "OK"
        except grpc.RpcError as e:
            out["error_code"] = e.code().name
            out["error_details"] = e.details()

        out["stream"] = [r.text for r in stub.Repeat(echo_pb2.EchoRequest(text="r", count=3),
                                                     timeout=10)]

        try:
            stub.Hang(echo_pb2.EchoRequest(), timeout=0.3)
            out["deadline_code"] = "OK"
        except grpc.RpcError as e:
            out["deadline_code"] = e.code().name

        endless = stub.Repeat(echo_pb2.EchoRequest(text="e", count=-1), timeout=10)
        out["endless_first"] = next(endless).text
        endless.cancel()
        try:
            next(endless)
            out["endless_after_cancel"] = "more"
        except grpc.RpcError as e:
            out["endless_after_cancel"] = e.code().name

        nope = channel.unary_unary("/sigil.test.Echo/Nope")
        try:
            nope(b"", timeout=10)
            out["unknown_code"] = "OK"
        except grpc.RpcError as e:
            out["unknown_code"] = e.code().name
    print(json.dumps(out))


if __name__ == "__main__":
    main()

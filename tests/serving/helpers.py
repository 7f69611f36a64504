"""Clients of the test servers."""

from __future__ import annotations

import grpc

from serving._proto.recsearch.v1 import recommender_pb2 as pb
from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc


def stub_for(port: int) -> tuple[grpc.Channel, pb_grpc.RecommenderServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, pb_grpc.RecommenderServiceStub(channel)


def status_of(call, request, timeout: float = 10, **kwargs) -> grpc.StatusCode:
    try:
        call(request, timeout=timeout, **kwargs)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


__all__ = ["pb", "pb_grpc", "status_of", "stub_for"]

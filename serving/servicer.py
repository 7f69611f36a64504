"""The RecommenderService handlers: protobuf in, ServingModel query, protobuf out, status codes on errors."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import grpc

from serving import metrics
from serving._proto.recsearch.v1 import recommender_pb2 as pb
from serving._proto.recsearch.v1 import recommender_pb2_grpc as pb_grpc
from serving.holder import ModelHolder
from serving.logs import RateLimiter
from serving.model import AttributeFilter, Query, Recommendation, RequestError, ServingModel

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RecommenderService"].full_name
_CODES = {"invalid_argument": grpc.StatusCode.INVALID_ARGUMENT, "not_found": grpc.StatusCode.NOT_FOUND}
_BATCH_CHUNK = 64  # queries processed between two deadline checks of RecommendBatch

Response = TypeVar("Response")


class _DeadlineExceeded(Exception):
    pass


class RecommenderServicer(pb_grpc.RecommenderServiceServicer):
    """Serves every RPC from the model the holder contains when the RPC starts."""

    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder
        self._error_log = RateLimiter()
        # The labelled children of the request metrics, looked up once: ``labels()`` takes a
        # lock and builds its key on every call.
        self._latency: dict[str, metrics.Histogram] = {}
        self._requests: dict[tuple[str, grpc.StatusCode], metrics.Counter] = {}

    async def Recommend(self, request: pb.RecommendRequest, context: grpc.aio.ServicerContext) -> pb.RecommendResponse:
        def answer(model: ServingModel) -> pb.RecommendResponse:
            result = model.recommend(_query(request))
            return _response(request.user_id, result, model.version)

        return await self._handle("Recommend", context, answer)

    async def RecommendBatch(
        self, request: pb.RecommendBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecommendBatchResponse:
        def answer(model: ServingModel) -> pb.RecommendBatchResponse:
            n_requests = len(request.requests)
            if n_requests == 0:
                raise RequestError("invalid_argument", "requests is empty; pass at least one RecommendRequest")
            if n_requests > model.limits.max_batch:
                raise RequestError(
                    "invalid_argument",
                    f"requests has {n_requests} entries, more than the maximum of {model.limits.max_batch}; split the batch",
                )
            response = pb.RecommendBatchResponse()
            for start in range(0, n_requests, _BATCH_CHUNK):
                _check_deadline(context)
                chunk = request.requests[start : start + _BATCH_CHUNK]
                for single, result in zip(chunk, model.recommend_many([_query(r) for r in chunk])):
                    response.responses.append(_response(single.user_id, result, model.version))
            return response

        return await self._handle("RecommendBatch", context, answer)

    async def SimilarItems(
        self, request: pb.SimilarItemsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SimilarItemsResponse:
        def answer(model: ServingModel) -> pb.SimilarItemsResponse:
            result = model.similar_items(
                request.item_id, request.k, tuple(request.exclude_item_ids), _filters(request.filters)
            )
            response = pb.SimilarItemsResponse(item_id=request.item_id, model_version=model.version)
            _add_items(response.items, result)
            return response

        return await self._handle("SimilarItems", context, answer)

    async def GetModelInfo(self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext) -> pb.ModelInfo:
        return await self._handle("GetModelInfo", context, lambda model: pb.ModelInfo(**model.info()))

    async def _handle(
        self, method: str, context: grpc.aio.ServicerContext, answer: Callable[[ServingModel], Response]
    ) -> Response:
        """Run ``answer`` on the current model; turn request errors into status codes and count the outcome."""
        started = time.perf_counter()
        model = self.holder.model
        code, message = grpc.StatusCode.OK, ""
        try:
            _check_deadline(context)
            response = answer(model)
        except RequestError as exc:
            code, message = _CODES[exc.code], exc.message
        except _DeadlineExceeded:
            code, message = grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the response was complete"
        except Exception:  # a bug or a broken model file: log it with its stack and return INTERNAL
            logger.exception("%s failed on model %s", method, model.version, extra={"event": "error", "method": method})
            code, message = grpc.StatusCode.INTERNAL, "internal error; the server log has the details"
        finally:
            self._record(method, code, time.perf_counter() - started)

        if code is grpc.StatusCode.OK:
            if method == "Recommend" and response.fallback:
                metrics.FALLBACKS.inc()
            elif method == "RecommendBatch":
                n_fallbacks = sum(r.fallback for r in response.responses)
                if n_fallbacks:
                    metrics.FALLBACKS.inc(n_fallbacks)
            return response

        metrics.ERRORS.labels(method, code.name).inc()
        self._log_error(method, code, message, model.version)
        await context.abort(code, message)
        raise AssertionError("context.abort returned")  # abort always raises

    def _record(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = metrics.LATENCY.labels(method)
        requests = self._requests.get((method, code))
        if requests is None:
            requests = self._requests[method, code] = metrics.REQUESTS.labels(method, code.name)
        latency.observe(seconds)
        requests.inc()

    def _log_error(self, method: str, code: grpc.StatusCode, message: str, version: str) -> None:
        if code is grpc.StatusCode.INTERNAL:
            return  # logged with its stack above
        allowed, dropped = self._error_log.allow(f"{method}/{code.name}")
        if dropped:
            logger.warning(
                "%d more %s errors of %s were not logged in the last minute", dropped, code.name, method,
                extra={"event": "error", "method": method, "code": code.name, "dropped": dropped},
            )
        if allowed:
            logger.warning(
                "%s returned %s: %s", method, code.name, message,
                extra={"event": "error", "method": method, "code": code.name, "model_version": version},
            )


def _check_deadline(context: grpc.aio.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise _DeadlineExceeded


def _filters(filters) -> tuple[AttributeFilter, ...]:
    return tuple(
        AttributeFilter(f.attribute, tuple(f.allowed_values), tuple(f.excluded_values)) for f in filters
    )


def _query(request: pb.RecommendRequest) -> Query:
    return Query(
        user_id=request.user_id,
        k=request.k,
        recent_item_ids=tuple(request.recent_item_ids),
        include_seen=request.include_seen,
        exclude_item_ids=tuple(request.exclude_item_ids),
        filters=_filters(request.filters),
    )


def _add_items(container, result: Recommendation) -> None:
    for item_id, score in zip(result.item_ids, result.scores):
        container.add(item_id=item_id, score=score)


def _response(user_id: str, result: Recommendation, version: str) -> pb.RecommendResponse:
    response = pb.RecommendResponse(user_id=user_id, model_version=version, fallback=result.fallback)
    _add_items(response.items, result)
    return response

import grpc
import numpy as np
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

from recsearch import model_dir as md
from recsearch.data import load_dataset
from recsearch.train import load_trained_model
from serving.model import Limits
from serving.server import BackgroundServer, ServerOptions
from tests.serving.helpers import pb, status_of, stub_for

MAX_MESSAGE_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def server(history_model_dir):
    running = BackgroundServer(
        ServerOptions(history_model_dir, port=0, limits=Limits(max_k=50, max_batch=8), max_message_bytes=MAX_MESSAGE_BYTES, reload_interval=0)
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(server):
    channel, stub = stub_for(server.port)
    yield stub
    channel.close()


@pytest.fixture(scope="module")
def arrays(history_model_dir):
    return md.load_model_dir(history_model_dir)


def exact_top_k(arrays, vector, k, banned=(), allowed=None):
    scores = arrays.item_vectors @ vector
    scores[list(banned)] = -np.inf
    if allowed is not None:
        scores[~allowed] = -np.inf
    order = np.argsort(-scores, kind="stable")[:k]
    return [arrays.item_ids[i] for i in order if np.isfinite(scores[i])]


def seen_of(arrays, user):
    return arrays.seen_items[arrays.seen_indptr[user] : arrays.seen_indptr[user + 1]].tolist()


def test_recommend_known_user_matches_exact_search(stub, arrays):
    user = 7
    response = stub.Recommend(pb.RecommendRequest(user_id=arrays.user_ids[user], k=10))
    ids = [item.item_id for item in response.items]
    assert ids == exact_top_k(arrays, arrays.user_vectors[user], 10, banned=seen_of(arrays, user))
    scores = [item.score for item in response.items]
    assert scores == sorted(scores, reverse=True)
    assert not response.fallback
    assert response.model_version == arrays.manifest["model_version"]


def test_recommend_excludes_seen_items(stub, arrays):
    user = 11
    seen = {arrays.item_ids[i] for i in seen_of(arrays, user)}
    response = stub.Recommend(pb.RecommendRequest(user_id=arrays.user_ids[user], k=50))
    assert not seen & {item.item_id for item in response.items}
    with_seen = stub.Recommend(pb.RecommendRequest(user_id=arrays.user_ids[user], k=10, include_seen=True))
    assert [i.item_id for i in with_seen.items] == exact_top_k(arrays, arrays.user_vectors[user], 10)


def test_recommend_honours_exclusion_list(stub, arrays):
    user_id = arrays.user_ids[2]
    first = stub.Recommend(pb.RecommendRequest(user_id=user_id, k=5))
    excluded = [item.item_id for item in first.items[:3]]
    second = stub.Recommend(pb.RecommendRequest(user_id=user_id, k=5, exclude_item_ids=excluded))
    assert not set(excluded) & {item.item_id for item in second.items}
    assert [i.item_id for i in second.items][:2] == [i.item_id for i in first.items][3:]


def test_recommend_filters_by_attribute(stub, arrays):
    codes, values = arrays.attributes["category"]
    wanted = [values[1], values[2]]
    response = stub.Recommend(pb.RecommendRequest(
        user_id=arrays.user_ids[4], k=10, filters=[pb.AttributeFilter(attribute="category", allowed_values=wanted)]
    ))
    categories = {values[codes[np.flatnonzero(arrays.item_ids == item.item_id)[0]]] for item in response.items}
    assert categories <= set(wanted)
    allowed = np.isin(codes, [1, 2])
    expected = exact_top_k(arrays, arrays.user_vectors[4], 10, banned=seen_of(arrays, 4), allowed=allowed)
    assert [item.item_id for item in response.items] == expected


def test_recommend_excluded_values_filter(stub, arrays):
    codes, values = arrays.attributes["brand"]
    response = stub.Recommend(pb.RecommendRequest(
        user_id=arrays.user_ids[4], k=20, filters=[pb.AttributeFilter(attribute="brand", excluded_values=[values[1]])]
    ))
    assert len(response.items) == 20
    returned = {codes[np.flatnonzero(arrays.item_ids == item.item_id)[0]] for item in response.items}
    assert 1 not in returned


def test_unknown_user_gets_popularity_fallback(stub, arrays):
    response = stub.Recommend(pb.RecommendRequest(user_id="never-seen", k=5))
    assert response.fallback
    assert [item.item_id for item in response.items] == arrays.item_ids[arrays.popular_items[:5]].tolist()


def test_session_only_request_uses_user_tower(stub, arrays, history_run, data_dir):
    recent = arrays.item_ids[[3, 9, 27]].tolist()
    response = stub.Recommend(pb.RecommendRequest(user_id="new-visitor", k=10, recent_item_ids=recent))
    assert not response.fallback
    assert not set(recent) & {item.item_id for item in response.items}

    network = load_trained_model(history_run, load_dataset(data_dir))
    history = torch.tensor([[0, 0, 3, 9, 27]])
    mask = torch.tensor([[False, False, True, True, True]])
    with torch.no_grad():
        vector = network.user_vectors(torch.tensor([network.n_users]), history, mask)[0].numpy()
    assert [item.item_id for item in response.items] == exact_top_k(arrays, vector, 10, banned=[3, 9, 27])
    top_index = np.flatnonzero(arrays.item_ids == response.items[0].item_id)[0]
    assert response.items[0].score == pytest.approx(float(arrays.item_vectors[top_index] @ vector), abs=1e-5)


def test_recommend_batch_equals_single_calls(stub, arrays):
    requests = [
        pb.RecommendRequest(user_id=arrays.user_ids[1], k=4),
        pb.RecommendRequest(user_id="nobody", k=3),
        pb.RecommendRequest(user_id="visitor", k=5, recent_item_ids=[arrays.item_ids[5]]),
    ]
    batch = stub.RecommendBatch(pb.RecommendBatchRequest(requests=requests))
    assert len(batch.responses) == 3
    for request, response in zip(requests, batch.responses):
        single = stub.Recommend(request)
        assert [i.item_id for i in response.items] == [i.item_id for i in single.items]
        assert response.fallback == single.fallback
        assert response.user_id == request.user_id


def test_similar_items_excludes_query_item(stub, arrays):
    item_id = arrays.item_ids[10]
    response = stub.SimilarItems(pb.SimilarItemsRequest(item_id=item_id, k=5))
    ids = [item.item_id for item in response.items]
    assert len(ids) == 5
    assert item_id not in ids
    assert ids == exact_top_k(arrays, arrays.item_vectors[10], 5, banned=[10])


def test_model_info(stub, arrays):
    info = stub.GetModelInfo(pb.GetModelInfoRequest())
    assert info.model_version == arrays.manifest["model_version"]
    assert info.n_items == len(arrays.item_ids)
    assert info.index_kind == "flat"
    assert info.index_recall_at_10 == 1.0
    assert info.uses_recent_items
    assert list(info.filter_attributes) == ["brand", "category"]
    assert info.max_k == 50
    assert "test/ndcg@10" in info.metrics


@pytest.mark.parametrize(
    "request_fields",
    [
        {"user_id": "u", "k": 0},
        {"user_id": "u", "k": -3},
        {"user_id": "u", "k": 51},
        {"user_id": "", "k": 5},
        {"user_id": "u", "k": 5, "exclude_item_ids": [""]},
        {"user_id": "u", "k": 5, "recent_item_ids": ["", "x"]},
        {"user_id": "u", "k": 5, "filters": [pb.AttributeFilter(attribute="colour", allowed_values=["red"])]},
        {"user_id": "u", "k": 5, "filters": [pb.AttributeFilter(attribute="category")]},
    ],
)
def test_recommend_invalid_argument(stub, request_fields):
    assert status_of(stub.Recommend, pb.RecommendRequest(**request_fields)) == grpc.StatusCode.INVALID_ARGUMENT


def test_batch_size_bounded(stub):
    too_many = pb.RecommendBatchRequest(requests=[pb.RecommendRequest(user_id="u", k=1)] * 9)
    assert status_of(stub.RecommendBatch, too_many) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(stub.RecommendBatch, pb.RecommendBatchRequest()) == grpc.StatusCode.INVALID_ARGUMENT


def test_similar_items_errors(stub, arrays):
    assert status_of(stub.SimilarItems, pb.SimilarItemsRequest(item_id="no-such-item", k=3)) == grpc.StatusCode.NOT_FOUND
    assert status_of(stub.SimilarItems, pb.SimilarItemsRequest(item_id="", k=3)) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(stub.SimilarItems, pb.SimilarItemsRequest(item_id=arrays.item_ids[0], k=0)) == grpc.StatusCode.INVALID_ARGUMENT


def test_request_size_bounded(stub):
    huge = pb.RecommendRequest(user_id="u", k=5, exclude_item_ids=["x" * 100] * (MAX_MESSAGE_BYTES // 100 + 10))
    assert status_of(stub.Recommend, huge) == grpc.StatusCode.RESOURCE_EXHAUSTED


class ExpiredContext:
    """A servicer context whose deadline has passed; records the status the handler aborts with."""

    code = None

    def time_remaining(self):
        return 0.0

    async def abort(self, code, details):
        self.code = code
        raise grpc.RpcError(details)


def test_handler_honours_passed_deadline(server):
    import asyncio

    from serving.servicer import RecommenderServicer

    context = ExpiredContext()
    servicer = RecommenderServicer(server.holder)
    with pytest.raises(grpc.RpcError):
        asyncio.run(servicer.Recommend(pb.RecommendRequest(user_id="u", k=5), context))
    assert context.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_health_reports_serving(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "recsearch.v1.RecommenderService"):
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_services(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {service.name for service in next(responses).list_services_response.service}
    assert {"recsearch.v1.RecommenderService", "grpc.health.v1.Health"} <= names


def test_metrics_count_requests_and_fallbacks(stub):
    def value(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before_ok = value("recsearch_requests_total", method="Recommend", code="OK")
    before_fallback = value("recsearch_fallbacks_total")
    before_errors = value("recsearch_errors_total", method="Recommend", code="INVALID_ARGUMENT")
    stub.Recommend(pb.RecommendRequest(user_id="nobody-at-all", k=2))
    status_of(stub.Recommend, pb.RecommendRequest(user_id="u", k=0))
    assert value("recsearch_requests_total", method="Recommend", code="OK") == before_ok + 1
    assert value("recsearch_fallbacks_total") == before_fallback + 1
    assert value("recsearch_errors_total", method="Recommend", code="INVALID_ARGUMENT") == before_errors + 1
    assert value("recsearch_request_seconds_count", method="Recommend") > 0


def test_bearer_token_required(history_model_dir):
    running = BackgroundServer(ServerOptions(history_model_dir, port=0, token="s3cret", reload_interval=0))
    try:
        channel, stub = stub_for(running.port)
        request = pb.RecommendRequest(user_id="u", k=2)
        assert status_of(stub.Recommend, request) == grpc.StatusCode.UNAUTHENTICATED
        assert status_of(stub.Recommend, request, metadata=[("authorization", "Bearer wrong")]) == grpc.StatusCode.UNAUTHENTICATED
        assert status_of(stub.Recommend, request, metadata=[("authorization", "Bearer s3cret")]) == grpc.StatusCode.OK
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        channel.close()
    finally:
        running.stop()

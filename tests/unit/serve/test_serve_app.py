"""The HTTP layer on a model-free scorer: shapes, limits, keys, errors, 429, metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serve_fakes import FakeScorer

from omnirm.options import ServeOptions
from omnirm.serve.app import create_app


def client_for(scorer: FakeScorer, api_key: str | None = None, **options: Any) -> TestClient:
    settings = {"max_wait_ms": 1.0, **options}
    return TestClient(create_app(scorer, ServeOptions(**settings), api_key=api_key))


@pytest.fixture
def client() -> Iterator[TestClient]:
    with client_for(FakeScorer()) as client:
        yield client


def pair(record_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": record_id, "prompt": "Q?", "responses": ["a", "bbb"], **fields}


def test_score_takes_a_list_or_an_object(client: TestClient) -> None:
    listed = client.post(
        "/score", json=[pair("a"), {"id": "one", "prompt": "Q", "responses": ["xy"]}]
    )
    assert listed.status_code == 200, listed.text
    records = listed.json()["records"]
    assert [r["id"] for r in records] == ["a", "one"]
    assert records[0]["rewards"] == [1.0, 3.0] and records[1]["rewards"] == [2.0]
    stamp = records[0]["scored_by"]
    assert stamp["model"] == "fake" and len(stamp["fingerprint"]) == 16  # as score stamps lines
    assert stamp["input"] != records[1]["scored_by"]["input"]
    wrapped = client.post("/score", json={"records": [pair("a", extra="kept")]})
    assert wrapped.json()["records"][0]["extra"] == "kept"


def test_bad_records_are_400_naming_position_id_and_field(client: TestClient) -> None:
    bad = client.post("/score", json=[pair("fine"), {"id": "b2", "prompt": "Q", "responses": [7]}])
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["type"] == "invalid_record"
    assert error["message"].startswith("records[1]: record 'b2': responses[0]: expected a string")
    assert error["records"][0] | {"message": ""} == {
        "where": "records[1]",
        "message": "",
        "source": None,
        "line": None,
        "id": "b2",
        "field": "responses[0]",
    }
    failed = client.post("/score", json=[pair("bad-x")])  # fails in the scorer
    assert failed.status_code == 400
    assert "record 'bad-x': responses[0]: cannot score" in failed.json()["error"]["message"]
    kept = client.post(
        "/score",
        json={
            "records": [pair("ok"), pair("bad-y"), {"id": "z", "responses": []}],
            "on_error": "record",
        },
    )
    assert kept.status_code == 200
    out = kept.json()["records"]
    assert out[0]["rewards"] == [1.0, 3.0]
    assert out[1]["error"]["id"] == "bad-y" and "rewards" not in out[1]
    assert out[2]["error"]["field"] == "prompt" and out[2]["responses"] == []


def test_bodies_that_are_not_json_or_too_large(client: TestClient) -> None:
    assert client.post("/score", content=b"{nope").status_code == 400
    assert client.post("/score", json={"rows": []}).status_code == 400
    with client_for(FakeScorer(), max_request_bytes=100) as small:
        big = small.post("/score", json=[pair("a", prompt="x" * 200)])
        assert big.status_code == 413
        assert "--max-request-bytes" in big.json()["error"]["message"]
    with client_for(FakeScorer(), max_queue=2) as short:
        many = short.post("/score", json=[pair(f"r{i}") for i in range(3)])
        assert many.status_code == 413 and "--max-queue" in many.json()["error"]["message"]


def test_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with client_for(FakeScorer(), api_key="s3cret") as client:
        assert client.post("/score", json=[pair("a")]).status_code == 401
        wrong = client.post("/score", json=[pair("a")], headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"] == "Bearer"
        assert client.get("/metrics").status_code == 401
        assert client.get("/health").status_code == 200  # probes need no key
        good = client.post("/score", json=[pair("a")], headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200


def test_openrlhf_protocol(client: TestClient) -> None:
    answer = client.post(
        "/openrlhf",
        json={
            "query": ["User: hi\nBot: hello!", "User: 2+2?\nBot: 4"],
            "prompts": ["User: hi\nBot:", "User: 2+2?\nBot:"],
            "labels": ["be brief", '{"criteria": "be exact", "id": "math-7"}'],
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {
        "rewards": [7.0, 2.0],
        "scores": [7.0, 2.0],
        "extra_logs": {"omnirm_reward": [7.0, 2.0]},
    }
    mismatch = client.post("/openrlhf", json={"query": ["abc"], "prompts": ["xyz"]})
    assert mismatch.status_code == 400
    assert (
        "query[0]: record 'query-0': query: the query does not begin"
        in mismatch.json()["error"]["message"]
    )
    uneven = client.post("/openrlhf", json={"query": ["a"], "prompts": ["a", "b"]})
    assert uneven.status_code == 400 and "prompts has 2 items" in uneven.json()["error"]["message"]
    forbidden = client.post(
        "/openrlhf", json={"query": ["ab"], "prompts": ["a"], "labels": [{"responses": ["x"]}]}
    )
    assert forbidden.status_code == 400 and "label.responses" in forbidden.text


def test_classify_protocol(client: TestClient) -> None:
    one = client.post("/classify", json={"model": "rm", "input": "four", "use_activation": False})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["object"] == "list" and body["model"] == "rm"
    assert body["data"] == [{"index": 0, "label": "reward", "probs": [4.0], "num_classes": 1}]
    many = client.post("/classify", json={"input": ["a", "bb"]}).json()
    assert many["model"] == "model:fake"
    assert [d["probs"][0] for d in many["data"]] == pytest.approx([0.7310586, 0.8807971])
    chat = client.post(
        "/classify",
        json={
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hey"},
            ],
            "use_activation": False,
        },
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["data"][0]["probs"] == [3.0]
    no_reply = client.post("/classify", json={"messages": [{"role": "user", "content": "hi"}]})
    assert no_reply.status_code == 400
    assert client.post("/classify", json={"model": "rm"}).status_code == 400


def test_overload_is_429_with_retry_after_and_queued_requests_still_answered() -> None:
    scorer = FakeScorer()
    scorer.release.clear()
    with client_for(scorer, max_batch_size=1, max_queue=1, max_wait_ms=0.0) as client:
        answers: dict[str, int] = {}

        def post(name: str) -> None:
            answers[name] = client.post("/score", json=[pair(name)]).status_code

        first = threading.Thread(target=post, args=("first",))
        first.start()
        assert scorer.entered.wait(10)  # the first is in the scorer
        second = threading.Thread(target=post, args=("second",))
        second.start()
        deadline = time.monotonic() + 10
        while client.get("/health").json()["queue"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = client.post("/score", json=[pair("third")])
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert "--max-queue" in refused.json()["error"]["message"]
        scorer.release.set()
        first.join(10)
        second.join(10)
        assert answers == {"first": 200, "second": 200}
        metrics = client.get("/metrics").text
        assert 'omnirm_requests_total{endpoint="/score",status="429"} 1.0' in metrics
        assert 'omnirm_requests_total{endpoint="/score",status="200"} 2.0' in metrics


def test_metrics_and_health(client: TestClient) -> None:
    health = client.get("/health").json()
    assert health == {
        "status": "ok",
        "scorer": "model:fake",
        "kind": "model",
        "pairwise": False,
        "queue": 0,
    }
    client.post("/score", json=[pair("a"), pair("b")])
    client.post("/classify", json={"input": ["x"]})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'omnirm_requests_total{endpoint="/score",status="200"} 1.0' in text
    assert 'omnirm_requests_total{endpoint="/classify",status="200"} 1.0' in text
    assert "omnirm_batch_size_count 2.0" in text  # one call for the pair of records, one for x
    assert "omnirm_batch_size_sum 3.0" in text
    assert 'omnirm_request_seconds_bucket{endpoint="/score",le="+Inf"} 1.0' in text
    assert "omnirm_queue_depth 0.0" in text
    assert 'omnirm_records_total{outcome="scored"} 3.0' in text


def test_a_judge_takes_no_bare_texts() -> None:
    scorer = FakeScorer()
    scorer.kind = "judge"
    with client_for(scorer) as client:
        refused = client.post("/classify", json={"input": ["text"]})
        assert refused.status_code == 400
        assert "needs a reward model" in refused.json()["error"]["message"]
        assert scorer.calls == []  # refused before it was queued

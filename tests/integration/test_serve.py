"""``omnirm serve`` on a tiny reward model: the same rewards as ``omnirm score``, the RL
protocols, media refused outside the root, and a real server process drained on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from omnirm.options import MediaOptions, ModelOptions, ServeOptions
from omnirm.scorer import Scorer, load_scorer
from omnirm.serve.app import create_app
from tests.conftest import make_record, write_jsonl
from tests.integration.test_bench import saved_reward_model

Cli = Callable[..., Any]


@pytest.fixture(scope="module")
def reward_model(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("serve") / "rm")


@pytest.fixture(scope="module")
def scorer(reward_model: Path) -> Iterator[Scorer]:
    scorer = load_scorer(reward_model, options=ModelOptions(device="cpu"))
    yield scorer
    scorer.close()


@pytest.fixture(scope="module")
def client(scorer: Scorer) -> Iterator[TestClient]:
    options = ServeOptions(max_batch_size=4, max_wait_ms=2.0)
    with TestClient(create_app(scorer, options)) as client:
        yield client


def records() -> list[dict[str, Any]]:
    return [
        make_record("pair", prompt="Name a colour.", responses=["Blue.", "I will not."]),
        make_record("crit", criteria="Prefer refusals.", responses=["Blue.", "I refuse."]),
        make_record(
            "three",
            prompt="Count to three.",
            responses=["1 2 3", "one, two, three", "3"],
            preference=None,
            ranking=[0, 1, 2],
        ),
        make_record(
            "chat",
            prompt=None,
            messages=[
                {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Tell me a joke."},
            ],
            responses=["Why did the chicken cross the road?", "No."],
        ),
    ]


def test_rewards_equal_omnirm_score(
    cli: Cli, client: TestClient, reward_model: Path, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "records.jsonl", records())
    expected = cli("score", str(path), "--model", str(reward_model), "--device", "cpu")
    assert expected.code == 0, expected.stderr
    answer = client.post("/score", json={"records": records()})
    assert answer.status_code == 200, answer.text
    served = answer.json()["records"]
    for want, got in zip(expected.jsonl(), served, strict=True):
        assert got["rewards"] == pytest.approx(want["rewards"], abs=1e-5), want["id"]
        assert {k: v for k, v in got.items() if k not in ("rewards", "margin")} == {
            k: v for k, v in want.items() if k not in ("rewards", "margin")
        }
        assert got.get("margin", 0) == pytest.approx(want.get("margin", 0), abs=1e-5)
    assert served[0]["scored_by"]["model"] == str(reward_model)


def test_one_response_records_get_the_reward_of_that_response(
    client: TestClient, scorer: Scorer
) -> None:
    pairs = records()
    singles = [
        {**record, "id": f"{record['id']}#{i}", "responses": [response]}
        for record in pairs
        for i, response in enumerate(record["responses"])
    ]
    for record in singles:
        record.pop("preference", None)
        record.pop("ranking", None)
    # the library, not only the server: a one-response record is scored on its own
    from omnirm.api import score

    alone = score([{**singles[0]}], scorer)
    together = {r["id"]: r["rewards"] for r in client.post("/score", json=pairs).json()["records"]}
    answer = client.post("/score", json=singles)
    assert answer.status_code == 200, answer.text
    for record in answer.json()["records"]:
        pair_id, index = record["id"].split("#")
        assert len(record["rewards"]) == 1 and "predicted" not in record
        assert record["rewards"][0] == pytest.approx(together[pair_id][int(index)], abs=1e-5)
    assert alone[0]["rewards"] == pytest.approx(together["pair"][:1], abs=1e-5)


def test_openrlhf_rewards_are_the_responses_rewards(client: TestClient) -> None:
    prompts = ["Name a colour.", "Count to three."]
    responses = ["Blue.", "1 2 3"]
    answer = client.post(
        "/openrlhf",
        json={
            "query": [p + r for p, r in zip(prompts, responses, strict=True)],
            "prompts": prompts,
            "labels": [None, "Prefer digits."],
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"rewards", "scores", "extra_logs"}
    expected = client.post(
        "/score",
        json=[
            {"id": "a", "prompt": prompts[0], "responses": [responses[0]]},
            {
                "id": "b",
                "prompt": prompts[1],
                "responses": [responses[1]],
                "criteria": "Prefer digits.",
            },
        ],
    ).json()["records"]
    want = [r["rewards"][0] for r in expected]
    assert body["rewards"] == pytest.approx(want, abs=1e-6)
    assert body["scores"] == body["rewards"]


def test_classify_texts_are_whole_sequences(client: TestClient, scorer: Scorer) -> None:
    from omnirm.records import parse_record

    record = records()[1]
    builder = scorer.scorer.builder  # type: ignore[attr-defined]
    text = builder.tokenizer.decode(builder.encode(parse_record(record), 0).input_ids)
    reward = client.post("/score", json=[record]).json()["records"][0]["rewards"][0]
    raw = client.post("/classify", json={"model": "rm", "input": [text], "use_activation": False})
    assert raw.status_code == 200, raw.text
    assert raw.json()["data"][-1]["probs"][-1] == pytest.approx(reward, abs=1e-5)
    squashed = client.post("/classify", json={"input": text}).json()["data"][0]["probs"][0]
    assert squashed == pytest.approx(1 / (1 + 2.718281828459045 ** (-reward)), abs=1e-5)
    chat = client.post(
        "/classify",
        json={
            "messages": [
                {"role": "user", "content": record["prompt"]},
                {"role": "assistant", "content": record["responses"][0]},
            ],
            "use_activation": False,
        },
    )
    plain = client.post("/score", json=[{**record, "criteria": None}]).json()["records"][0]
    assert chat.json()["data"][0]["probs"][0] == pytest.approx(plain["rewards"][0], abs=1e-5)
    too_long = client.post("/classify", json={"input": ["word " * 5000]})
    assert too_long.status_code == 400
    assert "input[0]: input: the text has" in too_long.json()["error"]["message"]


def test_media_stay_inside_the_root(
    tiny_qwen2_5_vl: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from PIL import Image

    folder = tmp_path_factory.mktemp("serve-vl")
    model = saved_reward_model(tiny_qwen2_5_vl, folder / "rm")
    root = folder / "media"
    root.mkdir()
    Image.new("RGB", (32, 32), "red").save(root / "red.png")
    Image.new("RGB", (32, 32), "blue").save(folder / "outside.png")
    scorer = load_scorer(model, media=MediaOptions(root=root), options=ModelOptions(device="cpu"))
    try:
        with TestClient(create_app(scorer, ServeOptions())) as client:

            def image(path: str) -> dict[str, Any]:
                return make_record(
                    "img",
                    prompt=[{"type": "text", "text": "Colour?"}, {"type": "image", "path": path}],
                    responses=["red", "blue"],
                )

            inside = client.post("/score", json=[image("red.png")])
            assert inside.status_code == 200, inside.text
            for path in ("../outside.png", str(folder / "outside.png")):
                refused = client.post("/score", json=[image(path)])
                assert refused.status_code == 400, path
                message = refused.json()["error"]["message"]
                assert "record 'img'" in message and "outside the media root" in message
            url = client.post("/score", json=[image("http://127.0.0.1:9/x.png")])
            assert url.status_code == 400 and "--allow-urls" in url.json()["error"]["message"]
    finally:
        scorer.close()


def test_usage_errors_exit_2(cli: Cli, reward_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNIRM_TEST_NO_SUCH_KEY", raising=False)
    no_key = cli("serve", "--model", str(reward_model), "--auth-key-env", "OMNIRM_TEST_NO_SUCH_KEY")
    assert no_key.code == 2 and "OMNIRM_TEST_NO_SUCH_KEY" in no_key.stderr
    zero = cli("serve", "--model", str(reward_model), "--max-batch-size", "0")
    assert zero.code == 2 and "--max-batch-size must be at least 1" in zero.stderr


def post(url: str, payload: Any, key: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, json.dumps(payload).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def queued(url: str) -> int:
    with urllib.request.urlopen(url + "/health", timeout=10) as response:
        return int(json.loads(response.read())["queue"])


def test_server_process_drains_on_sigterm(reward_model: Path) -> None:
    env = {**os.environ, "OMNIRM_SERVE_KEY": "k3y", "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    command = [
        sys.executable, "-m", "omnirm", "serve", "--model", str(reward_model), "--device", "cpu",
        "--host", "127.0.0.1", "--port", "0", "--max-batch-size", "8",
        "--auth-key-env", "OMNIRM_SERVE_KEY",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stderr is not None
        seen = ""
        while not (found := re.search(r"http://127\.0\.0\.1:\d+", seen)):
            line = proc.stderr.readline()
            assert line, seen  # the server ended before it took requests
            seen += line
        url = found.group(0)
        status, health = 0, {}
        with urllib.request.urlopen(url + "/health", timeout=10) as response:
            status, health = response.status, json.loads(response.read())
        assert status == 200 and health["status"] == "ok"
        assert post(url + "/score", [make_record("a")])[0] == 401
        answers: list[tuple[int, Any]] = []
        answered_at: list[float] = []

        def ask(index: int) -> None:  # 30 records a request: seconds of scoring in all
            batch = [make_record(f"r{index}-{k}", prompt=f"Question {k}?") for k in range(30)]
            answers.append(post(url + "/score", batch, key="k3y"))
            answered_at.append(time.monotonic())

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while queued(url) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queued(url) > 0  # records wait in the queue: their requests are in flight
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == ""  # stdout carries nothing but JSONL, and a server writes none
    assert all(status == 200 for status, _ in answers), answers
    ids = sorted(r["id"] for _, answer in answers for r in answer["records"])
    assert ids == sorted(f"r{i}-{k}" for i in range(6) for k in range(30))
    assert any(at > signalled for at in answered_at)  # some were in flight at SIGTERM
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/health", timeout=5)


def readme_functions() -> dict[str, Any]:
    """The reward functions of the README's "Serving rewards" section, defined."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("## Serving rewards", 1)[1].split("\n## ", 1)[0]
    namespace: dict[str, Any] = {}
    for block in re.findall(r"```python\n(.*?)```", section, re.DOTALL):
        exec(block, namespace)
    return namespace


def test_the_readme_reward_functions_work(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    shim = types.SimpleNamespace(
        post=lambda url, json, timeout: client.post(
            url.replace("http://127.0.0.1:8000", ""), json=json
        )
    )
    monkeypatch.setitem(sys.modules, "requests", shim)
    functions = readme_functions()
    reward = functions["compute_score"](
        "gsm8k", "Blue.", "Blue", extra_info={"index": 3, "prompt": "Name a colour."}
    )
    want = client.post(
        "/score", json=[{"id": "x", "prompt": "Name a colour.", "responses": ["Blue."]}]
    ).json()["records"][0]["rewards"][0]
    assert reward == pytest.approx(want, abs=1e-6)
    rewards = functions["omnirm_reward"](
        prompts=["Name a colour.", [{"role": "user", "content": "Name a colour."}]],
        completions=["Blue.", [{"role": "assistant", "content": "Blue."}]],
        criteria=[None, ""],
    )
    assert rewards == pytest.approx([want, want], abs=1e-5)


def test_a_judge_serves_pointwise_rewards_and_pairwise_verdicts(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omnirm.options import JudgeOptions, SamplingOptions
    from tests.tiny_models import make_tiny_fixed_answer

    root = tmp_path_factory.mktemp("serve-judges")
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(root / "cache"))
    seven = make_tiny_fixed_answer(root / "seven", "Decent. [[7]]")
    always_a = make_tiny_fixed_answer(root / "always_a", "The first response is better. [[A]]")
    rollout = {
        "query": ["Pick a number: 7", "Pick a number: 8"],
        "prompts": ["Pick a number: "] * 2,
    }
    sampling = SamplingOptions(max_new_tokens=24)
    for spec, mode in ((f"hf:{seven}", "pointwise"), (f"hf:{always_a}", "pairwise")):
        judge = JudgeOptions(spec=spec, mode=mode, sampling=sampling)  # answers cached
        scorer = load_scorer(judge=judge)
        try:
            with TestClient(create_app(scorer, ServeOptions())) as client:
                answer = client.post("/openrlhf", json=rollout)
                pair = client.post("/score", json=[make_record("p", criteria="Correctness.")])
        finally:
            scorer.close()
        assert pair.status_code == 200, pair.text
        if mode == "pointwise":
            assert answer.status_code == 200, answer.text
            assert answer.json()["rewards"] == [7.0, 7.0]
            assert pair.json()["records"][0]["rewards"] == [7.0, 7.0]
        else:
            assert answer.status_code == 400
            message = answer.json()["error"]["message"]
            assert "query[0]: record 'query-0': responses: pairwise judging" in message
            assert "--mode pointwise" in message
            scored = pair.json()["records"][0]
            assert scored["predicted"] == "tie" and scored["consistent"] is False  # A both ways
            assert pair.json()["records"][0]["scored_by"]["judge"] == spec

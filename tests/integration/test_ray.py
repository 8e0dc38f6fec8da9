"""Ray Data: the batch scorer gives the lines ``omnirm score`` writes, in every batch format;
``score --ray`` on a local Ray cluster (loopback, CPU) equals the one-process run, JSONL and
Parquet; the judge helpers for Ray Data's vLLM processors build omnirm's prompts and read its
verdicts."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_jsonl
from tests.integration.test_bench import gold_pairs, saved_reward_model
from tests.tiny_models import make_tiny_fixed_answer

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def rm(tiny_qwen2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_reward_model(tiny_qwen2, tmp_path_factory.mktemp("ray-rm") / "rm")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIRM_CACHE_DIR", str(tmp_path / "cache"))


def test_batch_scorer_gives_the_lines_of_score_in_every_batch_format(
    cli: Callable[..., Any], rm: Path, tmp_path: Path
) -> None:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from omnirm.integrations.ray import RecordScorer

    records = gold_pairs(5)
    records[1]["prompt"] = [{"type": "text", "text": "Nested parts?"}]  # content parts
    source = write_jsonl(tmp_path / "in.jsonl", records)
    expected = cli("score", "--model", str(rm), str(source), "--media-root", str(tmp_path))
    assert expected.code == 0, expected.stderr
    scorer = RecordScorer(model=str(rm), media={"root": str(tmp_path)}, options={"device": "cpu"})
    texts = [json.dumps(r) for r in records]
    batches = [
        pa.table({"record": texts}),
        pd.DataFrame({"record": texts}),
        {"record": np.array(texts, dtype=object)},
    ]
    for batch in batches:
        out = scorer(batch)
        rows = (
            out.to_pylist() if isinstance(out, pa.Table) else pd.DataFrame(out).to_dict("records")
        )
        assert [row["id"] for row in rows] == [r["id"] for r in records]
        lines = [json.loads(row["record"]) for row in rows]
        for line, want in zip(lines, expected.jsonl(), strict=True):
            assert line["rewards"] == pytest.approx(want["rewards"], abs=1e-5)
            assert line["scored_by"] == want["scored_by"]  # same fingerprint and input hash
            assert line["predicted"] == want["predicted"]
    # the record's fields as columns (read_json / read_parquet of omnirm records)
    # (one type a column: not the nested prompt, not "preference" of 0, 1 and "tie")
    plain = [
        {k: v for k, v in r.items() if k != "preference"} for i, r in enumerate(records) if i != 1
    ]
    rows = scorer(pa.Table.from_pylist(plain)).to_pylist()
    assert [row["id"] for row in rows] == [r["id"] for r in plain]


def test_batch_scorer_applies_the_error_policy(rm: Path) -> None:
    import pyarrow as pa

    from omnirm.errors import RecordError
    from omnirm.integrations.ray import RecordScorer

    texts = [json.dumps(gold_pairs(1)[0]), "{not json", json.dumps({"id": "x", "prompt": "p"})]
    recorded = RecordScorer(model=str(rm), on_error="record", options={"device": "cpu"})
    rows = recorded(pa.table({"record": texts})).to_pylist()
    assert [row["id"] for row in rows] == ["g0", None, "x"]
    assert "invalid JSON" in json.loads(rows[1]["record"])["error"]["message"]
    skipped = RecordScorer(model=str(rm), on_error="skip", options={"device": "cpu"})
    assert [row["id"] for row in skipped(pa.table({"record": texts})).to_pylist()] == ["g0"]
    failing = RecordScorer(model=str(rm), options={"device": "cpu"})
    with pytest.raises(RecordError, match="invalid JSON"):
        failing(pa.table({"record": texts}))


@pytest.fixture
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, address="local", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow  # ~100 s on 2 loaded CPU cores: Ray's start, two actors, two datasets
def test_score_on_a_local_ray_cluster_equals_one_process(
    cli: Callable[..., Any], rm: Path, tmp_path: Path, local_ray: None
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [{k: v for k, v in r.items() if k != "preference"} for r in gold_pairs(13)]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    single = cli("score", "--model", str(rm), str(source), "--device", "cpu")
    assert single.code == 0, single.stderr
    out = tmp_path / "ray.jsonl"
    args = ["score", "--model", str(rm), "--device", "cpu", "--ray", "--ray-concurrency", "2"]
    result = cli(*args, str(source), "-o", str(out))
    assert result.code == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in lines] == [r["id"] for r in records]  # input order
    for line, want in zip(lines, single.jsonl(), strict=True):
        assert line["rewards"] == pytest.approx(want["rewards"], abs=1e-5)
        assert line["scored_by"] == want["scored_by"]

    # Parquet in (the record's fields as columns) and out (id, record)
    parquet = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet)
    result = cli(*args, str(parquet), "-o", str(tmp_path / "out.parquet"))
    assert result.code == 0, result.stderr
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["id", "record"]
    assert table.column("id").to_pylist() == [r["id"] for r in records]
    for text, want in zip(table.column("record").to_pylist(), single.jsonl(), strict=True):
        assert json.loads(text)["rewards"] == pytest.approx(want["rewards"], abs=1e-5)

    refused = cli(*args, str(source), "-o", str(out), "--resume")
    assert refused.code == 2 and "--resume does not work with --ray" in refused.stderr


def test_judge_requests_and_answers_match_omnirms_judge(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    from omnirm.integrations.ray import judge_requests, read_answers

    record = {"id": "p", "prompt": "What is 2+2?", "criteria": "Correctness.",
              "responses": ["4", "five"]}  # fmt: skip
    requests = judge_requests(record)
    assert [r["label"] for r in requests] == ["ab", "ba"]
    ab, ba = (json.dumps(r["messages"]) for r in requests)
    assert "What is 2+2?" in ab and "Correctness." in ab
    assert ab.index("five") > ba.index("five")  # response 1 shown second, then first
    assert requests[0]["messages"][-1]["role"] == "user"
    one = judge_requests(record, orders="ab", mode="pointwise")
    assert [r["label"] for r in one] == ["response 0", "response 1"]

    answer = "The first response is better. [[A]]"
    judge = make_tiny_fixed_answer(tmp_path / "judge", answer)
    path = write_jsonl(tmp_path / "p.jsonl", [record])
    judged = cli("score", "--judge", f"hf:{judge}", str(path), "--max-new-tokens", "24")
    assert judged.code == 0, judged.stderr
    (want,) = judged.jsonl()
    text = want["judgements"][0]["answer"]
    read = read_answers(record, requests, [text, text])
    for field in ("predicted", "consistent", "rationale"):
        assert read[field] == want[field]
    assert [j["verdict"] for j in read["judgements"]] == [j["verdict"] for j in want["judgements"]]
    assert read_answers(record, requests, ["[[A]]", "[[A]]"])["predicted"] == "tie"
    assert read_answers(record, requests, ["[[A]]", "[[B]]"])["predicted"] == 0
    assert read_answers(record, requests, ["no verdict", None])["predicted"] is None

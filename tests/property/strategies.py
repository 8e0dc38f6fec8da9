"""JSON-ish values for the property tests: arbitrary JSON, and objects that look like the rows
of each format (the keys a reader interprets, with values of the right shape or not)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Text without lone surrogates (they are not JSON), with the fragments readers look for.
_CHARS = st.characters(blacklist_categories=("Cs",))
FRAGMENTS = (
    "<image>", "<video>", "<audio>", "\n\nHuman:", "\n\nAssistant:", "Human:", "Assistant:",
    "[[A]]", "[[B]]", "[[C]]", "[[7]]", "\\boxed{", "\\text{", "}", " ", "\n", "a", "<br />",
    "<newline>", "&amp;", "&#x41;", "media_data/", "media_data", "/", ".", "..", "\\", "tie",
)  # fmt: skip
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(_CHARS, max_size=6), max_size=6).map("".join)

#: Path-like strings: what media fields hold, with the edge cases of path handling.
paths = (
    st.sampled_from(
        [".", "./", "/", "..", "", " ", "\\", "media_data", "media_data/", "a/b.png",
         "/abs/media_data/x.png", "C:\\x\\media_data\\y.png", "https://example.org/x.png"]
    )
    | texts
)  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible value, sometimes any JSON value."""
    return st.one_of(strategy, strategy, json_values)


def objects(**keys: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects holding any of ``keys`` (or all of them, so that a reader gets past its first
    checks), each plausible or not, plus a few arbitrary keys."""
    some = st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in keys.items()})
    every = st.fixed_dictionaries({k: st.one_of(v, v, v, json_values) for k, v in keys.items()})
    shaped = some | every
    return st.builds(
        lambda known, other: {**other, **known},
        shaped,
        st.dictionaries(texts, json_values, max_size=2),
    )


part_types = st.sampled_from(["text", "image", "video", "audio", "mesh", "other"])
parts = objects(type=part_types, text=texts, path=paths, url=paths)
contents = texts | st.lists(maybe(parts), max_size=4)
roles = st.sampled_from(["user", "assistant", "system", "human", "gpt", "tool", ""])
messages = st.lists(maybe(objects(role=roles, content=contents)), max_size=4)
labels = st.sampled_from([0, 1, 2, -1, "tie", "TIE", True, None])

#: Objects shaped like omnirm records.
record_like = objects(
    id=texts | st.integers(),
    task=texts,
    prompt=contents,
    messages=messages,
    criteria=texts,
    responses=st.lists(contents, max_size=4),
    preference=labels,
    ranking=st.lists(st.integers(-1, 4), max_size=4),
    # Python callers may pass what no JSON file holds: ints past a float's range, NaN
    gold_scores=st.lists(
        st.integers(-3, 3) | st.floats() | st.sampled_from([10**400, -(10**400)]), max_size=4
    ),
)

# -- source formats ---------------------------------------------------------------------------

_turns = st.lists(
    maybe(objects(**{"from": roles, "value": texts, "role": roles, "content": texts})),
    max_size=5,
)
_reply = texts | objects(**{"from": roles, "value": texts}) | st.lists(texts, max_size=2)
_media = st.lists(maybe(paths | objects(path=paths)), max_size=4)
llamafactory_rows = objects(
    id=texts,
    conversations=_turns,
    messages=_turns,
    system=texts,
    chosen=_reply,
    rejected=_reply,
    images=_media,
    videos=_media,
    audios=_media,
)

_chat = st.lists(maybe(objects(role=roles, content=contents)), max_size=4)
pairs_rows = objects(
    id=texts | st.integers(),
    prompt=texts | _chat,
    chosen=texts | _chat,
    rejected=texts | _chat,
    criteria=texts,
    system=texts,
    images=st.lists(paths, max_size=3),
    margin=st.floats(allow_nan=False, allow_infinity=False),
)

omni_rows = objects(
    id=texts | st.integers(),
    prompt=texts,
    response1=texts,
    response2=texts,
    response1_path=paths,
    response2_path=paths,
    image=paths | objects(path=paths, bytes=texts),
    image_path=paths,
    model1=texts,
    model2=texts,
    criteria=texts,
    criteria_preference=st.sampled_from(["response1", "response2", "tie", " Tie ", "x"]),
)

lfqa_rows = objects(
    question=texts,
    answer_a=texts,
    answer_b=texts,
    overall_preference=st.sampled_from([-1, 0, 1, 2, 1.0, True]),
    answer_a_type=texts,
    answer_b_type=texts,
    justification=texts,
    coherence_preference=labels,
    doc_a=texts,
    doc_b=texts,
)
vicuna_questions = objects(question_id=st.integers(0, 3), text=texts, category=texts)
vicuna_ratings = objects(
    question_id=st.integers(0, 3), score=st.sampled_from([1, 2, 3, 4]), text=texts
)


# -- valid records (for the writers) ----------------------------------------------------------

_valid_parts = st.fixed_dictionaries(
    {"type": st.just("text"), "text": texts}
) | st.fixed_dictionaries(
    {"type": st.sampled_from(["image", "video", "audio", "mesh"]), "path": paths.filter(bool)}
)
valid_contents = texts | st.lists(_valid_parts, min_size=1, max_size=3)
_valid_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": valid_contents}
    ),
    min_size=1,
    max_size=4,
)
_extra_keys = st.dictionaries(
    st.sampled_from(["caption", "images", "chosen", "conversations", "system", "margin", "x"]),
    json_values,
    max_size=2,
)


@st.composite
def valid_records(draw: st.DrawFn) -> dict[str, Any]:
    """Objects that :func:`omnirm.records.parse_record` accepts, with any kind of label."""
    n = draw(st.integers(2, 4))
    record: dict[str, Any] = {"id": draw(texts.filter(bool))}
    layout = draw(st.sampled_from(["prompt", "messages", "both"]))
    if layout != "messages":
        record["prompt"] = draw(valid_contents)
    if layout != "prompt":
        record["messages"] = draw(_valid_messages)
    if draw(st.booleans()):
        record["criteria"] = draw(texts)
    record["responses"] = draw(st.lists(valid_contents, min_size=n, max_size=n))
    label = draw(st.sampled_from(["none", "preference", "tie", "ranking", "gold"]))
    if label == "preference":
        record["preference"] = draw(st.integers(0, n - 1))
    elif label == "tie" and n == 2:
        record["preference"] = "tie"
    elif label == "ranking":
        record["ranking"] = draw(st.permutations(range(n)))
    elif label == "gold":
        record["gold_scores"] = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    record.update({k: v for k, v in draw(_extra_keys).items() if k not in record})
    return record


# -- benchmark suites (omnirm.bench.suites, read from one JSON/JSONL file) ----------------------

_subsets = st.sampled_from(
    ["alpacaeval-easy", "math-prm", "hep-go", "donotanswer", "Factuality", "Ties", "Math", "x"]
)
suite_rows = objects(
    id=texts | st.integers(),
    ID=texts,
    prompt=texts,
    chosen=texts | st.lists(texts, max_size=3),
    rejected=texts | st.lists(texts, max_size=3),
    subset=_subsets,
    num_correct=st.integers(-1, 3),
    query=texts,
    response=st.lists(texts, max_size=3),
    human_ranking=st.lists(st.integers(-1, 2) | st.booleans(), max_size=3),
    image_path=paths,
    image=paths | objects(path=paths),
    Text=texts,
    Image=paths,
    Output1=texts,
    Output2=texts,
    Better=st.sampled_from(["Output1", "Output2", "Output3"]),
    Category=st.sampled_from(["reasoning", "safety", "knowledge", "vqa", "open_generation/x", ""]),
    Meta=objects(Category=texts),
    models=st.lists(texts, max_size=2),
)

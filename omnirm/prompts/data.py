"""Prompts of the data-building pipelines (``omnirm data criteria``, ``omnirm data pairs``).

Teachers answer in JSON, checked field by field (:mod:`omnirm.data.teach`); an answer that does
not pass is asked again with the problem named (:data:`REASK`). Verifiers of a criterion are
ordinary pairwise judges: they read the judge prompt of :mod:`omnirm.prompts.templates` with the
written criterion in it, so their answers share the judge cache with ``omnirm score --judge``.

:data:`DATA_PROMPT_VERSION` is stamped on every record the pipelines write; change it whenever
a prompt here changes meaning.
"""

from __future__ import annotations

DATA_PROMPT_VERSION = "omnirm-data-1"

CRITERION_SYSTEM = """\
You write evaluation criteria for preference data. You are shown a user's request and two
responses, A and B, and told which response must come out better.

Write one criterion, in one or two sentences, under which response {target} is clearly better
than response {other}. The criterion must:
- describe a quality a reader could check in any response to this request (for example a
  property of content, accuracy, style, format, length, tone or safety);
- stand on its own: never mention "response A", "response B", "the first" or "the second";
- be true to the two responses you see: a careful judge applying it must prefer response
  {target}.

Reply with one JSON object and nothing else, exactly in this form:
{{"criterion": "<the criterion>", "reason": "<one sentence: why response {target} wins under it>"}}"""

CRITERION_USER = """\
[The user's request]
{prompt}

[Response A]
{response_a}

[Response B]
{response_b}

Response {target} must be the better one under your criterion."""

#: The five aspects the pair teachers score, after Omni-RRM (key: what the teacher is told).
PAIR_ASPECTS: dict[str, str] = {
    "fluency": "fluency and coherence of the writing",
    "relevance": "relevance to the request and to its media",
    "accuracy": "accuracy and completeness of the content",
    "reasoning": "quality of the reasoning",
    "safety": "safety: no harmful, deceptive or inappropriate content",
}

PAIR_SYSTEM = """\
You are a careful evaluator of answers to requests that may include images, video or audio.
Score each of the two responses, A and B, from 0 (worst) to 10 (best) on each aspect:
{aspects}

Judge the content only; the order of the responses and their length must not sway you. Then
give your verdict: "A" if response A is better overall, "B" if response B is, "tie" if neither
is. The verdict must agree with your scores. Explain your judgement in a short rationale.

Reply with one JSON object and nothing else, in this form (numbers are integers 0-10):
{{"scores": {{"A": {{{score_keys}}}, "B": {{{score_keys}}}}},
 "verdict": "A" | "B" | "tie", "rationale": "<your reasoning, a few sentences>"}}"""

PAIR_USER = """\
[The user's request]
{prompt}

[Response A]
{response_a}

[Response B]
{response_b}"""

REASK = """\
Your reply could not be used: {problem}. Reply again with only the JSON object, in the form \
given, and nothing else."""


def criterion_system(target: str) -> str:
    """The criterion writer's instructions, for a criterion under which ``target`` (A or B)
    wins."""
    return CRITERION_SYSTEM.format(target=target, other="B" if target == "A" else "A")


def pair_system() -> str:
    aspects = "\n".join(f"- {key}: {text}" for key, text in PAIR_ASPECTS.items())
    keys = ", ".join(f'"{key}": <0-10>' for key in PAIR_ASPECTS)
    return PAIR_SYSTEM.format(aspects=aspects, score_keys=keys)

"""``omnirm train r1 --stage grpo`` on a media judge: rollouts for several prompts at once (the
processor encodes ``--batch-size`` conversations together, left-padded, and one ``generate``
call answers them all) against one prompt at a time (``--batch-size 1``: the behaviour before),
on the same model, conversations and settings, in one script.

Models: **tiny random** Qwen2.5-VL and Qwen2.5-Omni thinker (``tests/tiny_models.py``, hidden
size 32-64, two layers, with the tests' re-drawn attention and MLP output weights so that answers
differ by prompt: their figures say what the batching saves in per-call overhead, not
what a 7B judge gains). Conversations: the judge's own for ``tests``' media records (images,
two images, a video or an audio clip), ``--repeat`` copies of them. Each variant is timed
``--runs`` times on the sampler GRPO uses (:func:`omnirm.train.r1.rollouts.sample`, sampling
at temperature 1, ``--generations`` answers per prompt, up to ``--max-new`` tokens); the best
run counts. A greedy pass of both checks that they give the same answers.

Run: ``python benchmarks/bench_r1_media_rollouts.py [--batch-size 8] [--repeat 4] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(policy: Any, conversations: list[Any], config: Any, device: Any, runs: int) -> float:
    from omnirm.train.r1.rollouts import sample

    best = float("inf")
    for _ in range(runs):
        if device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        began = time.perf_counter()
        sample(policy.net, policy, [], config, device, conversations)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - began)
    return best


def greedy_answers(policy: Any, conversations: list[Any], config: Any, device: Any) -> Any:
    from omnirm.train.r1.rollouts import sample

    original = policy.net.generate

    def generate(**options: Any) -> Any:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return original(**options)

    policy.net.generate = generate
    try:
        return sample(policy.net, policy, [], config, device, conversations).completion_ids
    finally:
        policy.net.generate = original


def main() -> None:
    import torch

    from tests.integration.test_train_r1_media import media_records
    from tests.integration.test_train_r1_media_rollouts import load
    from tests.tiny_models import make_tiny_qwen2_5_omni_thinker, make_tiny_qwen2_5_vl

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=4, help="copies of the 6 conversations")
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--max-new", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as folder:
        for name, make, omni in (
            ("tiny Qwen2.5-VL", make_tiny_qwen2_5_vl, False),
            ("tiny Qwen2.5-Omni thinker", make_tiny_qwen2_5_omni_thinker, True),
        ):
            root = Path(folder) / name.replace(" ", "-")
            root.mkdir()
            model = make(root / "model")
            policy, conversations, config = load(model, media_records(root, omni))
            policy.net.to(device)
            conversations = conversations * args.repeat
            config = dataclasses.replace(
                config, generations=args.generations, max_completion_length=args.max_new
            )
            batched = dataclasses.replace(config, batch_size=args.batch_size)
            single = dataclasses.replace(config, batch_size=1)
            same = greedy_answers(policy, conversations, batched, device) == greedy_answers(
                policy, conversations, single, device
            )
            timed(policy, conversations[:2], batched, device, 1)  # warm-up
            one = timed(policy, conversations, single, device, args.runs)
            many = timed(policy, conversations, batched, device, args.runs)
            row = {
                "model": name,
                "device": str(device),
                "prompts": len(conversations),
                "generations": args.generations,
                "max_new_tokens": args.max_new,
                "batch_size": args.batch_size,
                "one_at_a_time_s": round(one, 3),
                "batched_s": round(many, 3),
                "speedup": round(one / many, 2),
                "greedy_answers_identical": same,
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

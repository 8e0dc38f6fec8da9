"""Scoring speed with a shared prefix against scoring every sequence whole.

``omnirm score`` runs each record's criterion + prompt (+ prompt media) once and every response
on its KV cache, and reuses the vision features of pictures and clips seen earlier in the run.
The baseline scores each (prompt, response) sequence independently — the same model, records,
batch size and process, with neither reuse. Whole and shared runs alternate ``--repeats`` times;
the script prints records/s of both (medians), the median speed-up with its spread over the
repeats, the ideal speed-up from token counts, (P+R)·N / (P+N·R) for N responses of R tokens
after a prefix of P, and the largest difference between their rewards (target: at most 1e-4).
``--profile`` shows where a shared run of image pairs spends its time.

Cases: 2 and 8 candidates after an image prompt or a video prompt, and text-only pairs. Every
record has its own picture or clip, so nothing is reused across records (that would flatter
omnirm); the last line measures that reuse separately: one prompt image judged under several
criteria.

Run: ``python benchmarks/bench_score_prefix.py [--model DIR] [--records N] [--repeats R]``.
Without ``--model`` a small random Qwen2.5-VL is built (hidden 256, 8 layers, vision tower of 8
blocks; images and video frames up to 448x448 → 256 tokens per image or pair of frames), with a real Qwen
vocabulary. Any local Qwen2.5-VL-style folder works as ``--model``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WORDS = [
    "the",
    "a",
    "picture",
    "shows",
    "clear",
    "answer",
    "red",
    "blue",
    "small",
    "large",
    "bright",
    "dark",
    "image",
    "frame",
    "scene",
]


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def make_media(folder: Path, count: int, seed: int) -> None:
    import av
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 255, (448, 448, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image{i}.png")
        with av.open(str(folder / f"clip{i}.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=8)
            stream.width, stream.height, stream.pix_fmt = 448, 448, "yuv420p"
            stream.options = {"preset": "ultrafast"}
            for _ in range(16):
                frame = rng.integers(0, 255, (448, 448, 3), dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))


def records(kind: str, count: int, candidates: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        question = {"type": "text", "text": sentence(rng, 12)}
        if kind == "image":
            prompt: Any = [{"type": "image", "path": f"image{i}.png"}, question]
        elif kind == "video":
            prompt = [{"type": "video", "path": f"clip{i}.mp4"}, question]
        else:
            prompt = sentence(rng, 40)
        out.append(
            {
                "id": f"{kind}-{candidates}-{i}",
                "criteria": "Prefer the answer that describes the input accurately.",
                "prompt": prompt,
                "responses": [sentence(rng, rng.randint(15, 40)) for _ in range(candidates)],
            }
        )
    return out


def score(
    model: Any, builder: Any, batch: list[dict[str, Any]], *, share: bool, batch_size: int
) -> tuple[float, dict[str, list[float]]]:
    import torch

    from omnirm.models.media_features import MediaFeatureCache
    from omnirm.models.prefix import base_model
    from omnirm.on_error import ErrorPolicy
    from omnirm.records import parse_record
    from omnirm.scoring import RewardScorer as Scorer
    from omnirm.scoring import ScoreSettings

    base = base_model(model.backbone)
    for name in ("get_image_features", "get_video_features"):  # no reuse left from a last run
        base.__dict__.pop(name, None)
    if share:
        MediaFeatureCache().install(model.backbone)
    builder._media.clear()  # decoded media: both runs decode every file themselves
    settings = ScoreSettings(batch_size=batch_size, share_prefix=share)
    scorer = Scorer(model, builder, settings, scored_by={})
    items = [(i + 1, parse_record(r)) for i, r in enumerate(batch)]
    start = time.perf_counter()
    with torch.inference_mode():
        results = {r["id"]: r["rewards"] for r in scorer.score(items, ErrorPolicy("fail"))}
    return time.perf_counter() - start, results


def ideal_speedup(builder: Any, batch: list[dict[str, Any]]) -> float:
    """The speed-up if cost were proportional to tokens: every (prompt, response) sequence's
    tokens over the tokens of each prompt once plus every response, (P+R)·N / (P+N·R) for N
    responses of R tokens after a prefix of P (media placeholders counted as tokens; the
    vision tower's own work is not in it)."""
    from omnirm.models.prefix import encode_shared_prefix
    from omnirm.records import parse_record

    whole = shared = 0
    for record in batch:
        encoded = encode_shared_prefix(builder, parse_record(record))
        assert encoded is not None
        prefix = encoded.prefix.length
        lengths = [c.length for c in encoded.continuations]
        whole += sum(prefix + n for n in lengths)
        shared += prefix + sum(lengths)
    return whole / shared


def compare(
    model: Any, builder: Any, name: str, batch: list[dict[str, Any]], repeats: int, bs: int
) -> None:
    """Whole and shared runs alternate; each repeat's ratio counts, and the median ratio and
    its spread (lowest–highest) are printed, beside the ideal from token counts."""
    speedups, whole_times, shared_times = [], [], []
    for _ in range(repeats):
        t_whole, whole = score(model, builder, batch, share=False, batch_size=bs)
        t_shared, shared = score(model, builder, batch, share=True, batch_size=bs)
        whole_times.append(t_whole)
        shared_times.append(t_shared)
        speedups.append(t_whole / t_shared)
    diff = max(abs(a - b) for key in whole for a, b in zip(whole[key], shared[key], strict=True))
    same = all(np.argmax(whole[key]) == np.argmax(shared[key]) for key in whole)  # best-of-N picks
    w, s = float(np.median(whole_times)), float(np.median(shared_times))
    print(
        f"{name:<34} whole {len(batch) / w:7.2f} rec/s   shared {len(batch) / s:7.2f} rec/s   "
        f"speed-up median {np.median(speedups):5.2f}x (spread {min(speedups):.2f}–"
        f"{max(speedups):.2f}, {repeats} repeats)   ideal {ideal_speedup(builder, batch):5.2f}x   "
        f"max |Δreward| {diff:.1e}   same picks {same}",
        flush=True,
    )


def profile_shared(model: Any, builder: Any, batch: list[dict[str, Any]], bs: int) -> None:
    """Where a shared-prefix run spends its time (cumulative, the top entries)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    score(model, builder, batch, share=True, batch_size=bs)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(
        r"omnirm|get_image_features|get_rope_index|forward|index_select|processor", 25
    )


def small_model(folder: Path) -> Path:
    """The small random Qwen2.5-VL both scoring benchmarks use (see the module docs)."""
    from tests.tiny_models import make_tiny_qwen2_5_vl

    return make_tiny_qwen2_5_vl(
        folder, scale=4, image_max_pixels=448 * 448, video_max_pixels=448 * 448
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="a local Qwen2.5-VL-style folder (default: built here)")
    parser.add_argument("--records", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--profile", action="store_true", help="profile a shared run of image pairs and stop"
    )
    args = parser.parse_args()

    import torch

    from omnirm import console
    from omnirm.media import MediaResolver
    from omnirm.models.checkpoint import build_reward_model
    from omnirm.train.bt import BTConfig

    console.quiet_libraries()
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="bench-prefix-"))
    model_dir = args.model
    if model_dir is None:
        model_dir = str(small_model(work / "model"))
    media = work / "media"
    media.mkdir()
    make_media(media, args.records, seed=0)
    config = BTConfig(model=model_dir, data="-", output="-", max_length=4096, video_frames=4)
    model, builder, _ = build_reward_model(config, MediaResolver(media))
    model.eval()
    print(
        f"model {model_dir} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters), "
        f"{torch.get_num_threads()} threads, batch size {args.batch_size}",
        flush=True,
    )
    n, r, bs = args.records, args.repeats, args.batch_size
    if args.profile:
        profile_shared(model, builder, records("image", n, 2, seed=2), bs)
        return
    for kind in ("image", "video"):
        for candidates in (2, 8):
            batch = records(kind, n, candidates, seed=candidates)
            compare(model, builder, f"{kind} prompt, {candidates} candidates", batch, r, bs)
    compare(model, builder, "text prompt, 2 candidates", records("text", 4 * n, 2, 1), r, bs)
    same_image = [
        {**record, "id": f"criterion-{i}", "criteria": f"Criterion number {i}."}
        for i, record in enumerate(records("image", 1, 2, seed=5) * n)
    ]
    compare(model, builder, "one image prompt, many criteria", same_image, r, bs)


if __name__ == "__main__":
    main()

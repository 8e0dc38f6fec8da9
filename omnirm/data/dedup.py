"""``omnirm data dedup``: exact and near-duplicate records, the first of each kept.

A record's key is its prompt (``by="prompt"``), its responses (``"response"``) or both with the
criterion (``"pair"``: the same pair under another criterion is not a duplicate). Text is
compared after lower-casing and collapsing whitespace; media parts count by their path (or URL).

Exact duplicates have equal keys (a SHA-256 of the normalised key). Near duplicates are found
with MinHash LSH (``datasketch``): each key becomes a MinHash over its character ``shingle``-grams,
candidates come from the LSH index of the records kept so far, and a record is a duplicate of
the earliest kept candidate whose estimated Jaccard similarity reaches ``threshold``. Records
stream through in order (memory: one MinHash per kept record). :class:`Deduplicator` reports
every cluster: the kept record and its duplicates, each with the kind (exact or near) and
the similarity.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from omnirm.errors import UsageError
from omnirm.records import Content, Record, as_parts

By = Literal["prompt", "response", "pair"]
_SPACE = re.compile(r"\s+")


def content_key(content: Content) -> str:
    """A content value as comparable text: its text, and media by path."""
    pieces = []
    for part in as_parts(content):
        if part["type"] == "text":
            pieces.append(part.get("text", ""))
        else:
            pieces.append(f"<{part['type']}:{part.get('path') or part.get('url')}>")
    return " ".join(pieces)


def record_key(record: Record, by: By) -> str:
    """The normalised text a record is compared by (see the module docs)."""
    prompt = content_key(record.prompt) if record.prompt is not None else ""
    if record.prompt is None and record.messages:
        prompt = " ".join(content_key(m["content"]) for m in record.messages)
    responses = " <next> ".join(content_key(r) for r in record.responses)
    if by == "prompt":
        text = prompt
    elif by == "response":
        text = responses
    else:
        text = f"{record.criteria or ''} <prompt> {prompt} <responses> {responses}"
    return _SPACE.sub(" ", text).strip().lower()


@dataclass
class Cluster:
    kept: str
    members: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "size": 1 + len(self.members), "duplicates": self.members}


class Deduplicator:
    """Decides, record by record in input order, whether each is a duplicate of one kept."""

    def __init__(
        self,
        by: By = "prompt",
        *,
        threshold: float = 0.8,
        num_perm: int = 128,
        shingle: int = 5,
        near: bool = True,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise UsageError(f"--threshold must be in (0, 1], got {threshold}")
        if shingle < 1:
            raise UsageError(f"--shingle must be at least 1, got {shingle}")
        if num_perm < 16:
            raise UsageError(f"--num-perm must be at least 16, got {num_perm}")
        self.by = by
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle = shingle
        self.near = near
        self._exact: dict[str, str] = {}  # key digest → kept id
        self._hashes: dict[str, Any] = {}  # kept id → MinHash
        self._lsh: Any = None
        if near:
            from datasketch import MinHashLSH

            self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.clusters: dict[str, Cluster] = {}
        self.kept = 0
        self.exact = 0
        self.near_duplicates = 0
        self._names: set[str] = set()

    def check(self, record: Record) -> dict[str, Any] | None:
        """None when the record is kept (it joins the index), else why it is a duplicate:
        ``{"of": kept id, "kind": "exact" | "near", "similarity": …}``."""
        key = record_key(record, self.by)
        digest = hashlib.sha256(key.encode()).hexdigest()
        kept = self._exact.get(digest)
        if kept is not None:
            self.exact += 1
            return self._join(kept, record.id, "exact", 1.0)
        minhash = self._minhash(key) if self.near else None
        if minhash is not None and self._lsh is not None:
            best = self._nearest(minhash)
            if best is not None:
                self.near_duplicates += 1
                return self._join(best[0], record.id, "near", best[1])
        name = self._unique(record.id)
        self._exact[digest] = name
        if minhash is not None and self._lsh is not None:
            self._hashes[name] = minhash
            self._lsh.insert(name, minhash)
        self.kept += 1
        return None

    def _unique(self, record_id: str) -> str:
        """An LSH key for a kept record (ids repeat in some inputs)."""
        name, n = record_id, 1
        while name in self._names:
            n += 1
            name = f"{record_id}#{n}"
        self._names.add(name)
        return name

    def _minhash(self, key: str) -> Any:
        from datasketch import MinHash

        minhash = MinHash(num_perm=self.num_perm, seed=1)
        size = self.shingle
        grams = {key[i : i + size] for i in range(max(1, len(key) - size + 1))}
        minhash.update_batch([g.encode() for g in grams])
        return minhash

    def _nearest(self, minhash: Any) -> tuple[str, float] | None:
        candidates = self._lsh.query(minhash)
        scored = [(name, self._hashes[name].jaccard(minhash)) for name in candidates]
        scored = [(name, sim) for name, sim in scored if sim >= self.threshold]
        if not scored:
            return None
        order = {name: i for i, name in enumerate(self._hashes)}  # insertion order: earliest
        return min(scored, key=lambda pair: order[pair[0]])

    def _join(self, kept: str, record_id: str, kind: str, similarity: float) -> dict[str, Any]:
        cluster = self.clusters.setdefault(kept, Cluster(kept.split("#")[0]))
        entry = {"id": record_id, "kind": kind, "similarity": round(similarity, 4)}
        cluster.members.append(entry)
        return {"of": cluster.kept, "kind": kind, "similarity": entry["similarity"]}

    def summary(self) -> str:
        return (
            f"{self.kept} kept, {self.exact} exact and {self.near_duplicates} near duplicates "
            f"dropped (by {self.by}), {len(self.clusters)} clusters"
        )

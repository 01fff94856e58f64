from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
from datasketch import LeanMinHash, MinHash, MinHashLSH

from llmops.datasets.kinds import DatasetKind
from llmops.datasets.transforms.dedup import (
    ExactDedup,
    ExactDedupConfig,
    MinHashDedup,
    MinHashDedupConfig,
    canonical_text,
    shingle_hashes,
    shingles,
)

from .conftest import text_table

EN_A = (
    "The committee met on Tuesday to discuss the budget for next year, and after a long debate it agreed to "
    "raise spending on schools, roads and the public library by a modest amount. Several members asked for "
    "a review of the parking fees, which have not changed in ten years, and the chair promised a report."
)
EN_A_NEAR = EN_A.replace("Tuesday", "Wednesday")
EN_B = (
    "A small robot wandered through the empty warehouse at night, counting boxes and humming an old song that "
    "nobody had taught it, until the lights came on at dawn."
)
ZH_A = (
    "春天来了，公园里的花都开了，孩子们在草地上放风筝，老人们坐在长椅上聊天，到处都是欢声笑语，大家都很开心。"
    "湖边的柳树发出了新芽，几只小鸭子在水里游来游去，年轻人沿着小路跑步，空气里满是青草的香味。"
)
ZH_A_NEAR = ZH_A.replace("老人们", "老年人")
ZH_B = "这家餐厅的菜很有特色，尤其是红烧肉和清蒸鱼，价格也很公道，服务员态度热情，周末常常需要排队等位。"


def decide(step: ExactDedup | MinHashDedup, texts: list[str]) -> tuple[list[int], list[tuple[int, list[int]]]]:
    table = text_table(texts)
    decision = step.decide(np.arange(len(texts), dtype=np.int64), step.signatures(table, DatasetKind.text))
    clusters = [(c.kept, [row for row, _ in c.removed]) for c in decision.clusters]
    return sorted(decision.drop.tolist()), clusters


def test_canonical_text() -> None:
    assert canonical_text("  Hello\tWORLD \n ｆｏｏ ") == "hello world foo"


def test_exact_dedup_keeps_first_of_normalized_copies() -> None:
    texts = [EN_A, EN_B, EN_A.upper(), "  " + EN_A.replace(" ", "   "), ZH_A, ZH_A, EN_A_NEAR]
    drop, clusters = decide(ExactDedup(ExactDedupConfig()), texts)
    assert drop == [2, 3, 5]
    assert clusters == [(0, [2, 3]), (4, [5])]


def test_minhash_signatures_are_fixed_size_and_deterministic() -> None:
    step = MinHashDedup(MinHashDedupConfig())
    sigs = step.signatures(text_table([EN_A, EN_A]), DatasetKind.text)
    assert sigs.type == pa.binary(128 * 8)
    assert sigs[0] == sigs[1]
    again = MinHashDedup(MinHashDedupConfig()).signatures(text_table([EN_A]), DatasetKind.text)
    assert again[0] == sigs[0]


def test_shingles_words_for_latin_characters_for_cjk() -> None:
    assert shingles("a b c d e f", ngram=5) == {b"a b c d e", b"b c d e f"}
    assert shingles("一二三四五六", cjk_ngram=5) == {"一二三四五".encode(), "二三四五六".encode()}
    assert shingles("too short") == {b"too short"}
    assert shingles("") == set()


def test_minhash_finds_english_and_chinese_near_duplicates() -> None:
    texts = [EN_A, EN_B, EN_A_NEAR, ZH_A, ZH_B, ZH_A_NEAR, EN_B.lower()]
    step = MinHashDedup(MinHashDedupConfig())
    table = text_table(texts)
    decision = step.decide(np.arange(len(texts), dtype=np.int64), step.signatures(table, DatasetKind.text))
    assert sorted(decision.drop.tolist()) == [2, 5, 6]
    by_kept = {c.kept: c.removed for c in decision.clusters}
    assert set(by_kept) == {0, 1, 3}
    for removed in by_kept.values():
        assert all(0.8 <= jaccard <= 1.0 for _, jaccard in removed)
    assert by_kept[1][0] == (6, 1.0)


def test_minhash_threshold_controls_what_counts() -> None:
    texts = [EN_A, EN_A_NEAR]
    assert decide(MinHashDedup(MinHashDedupConfig(threshold=0.99)), texts)[0] == []
    assert decide(MinHashDedup(MinHashDedupConfig(threshold=0.5)), texts)[0] == [1]


def test_minhash_on_row_ids_not_positions() -> None:
    step = MinHashDedup(MinHashDedupConfig())
    table = text_table([EN_A, EN_A])
    decision = step.decide(np.array([10, 42], dtype=np.int64), step.signatures(table, DatasetKind.text))
    assert decision.drop.tolist() == [42]
    assert decision.clusters[0].kept == 10


def near_copies(n: int = 400, seed: int = 0) -> list[str]:
    """Random word rows, a third of them followed later by a copy with one word replaced or dropped."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(300)]
    texts: list[str] = []
    for _ in range(n):
        row = rng.choices(words, k=rng.randint(0, 70))
        texts.append(" ".join(row))
        if row and rng.random() < 0.33:
            copy = list(row)
            if rng.random() < 0.5:
                copy[rng.randrange(len(copy))] = "other"
            else:
                del copy[rng.randrange(len(copy))]
            texts.append(" ".join(copy))
    return texts + [EN_A, EN_A_NEAR, ZH_A, ZH_A_NEAR, "", "", "short one", "ＦＵＬＬ ｗｉｄｔｈ Ünïcode words here ok"]


def test_minhash_signature_is_datasketch_minhash_of_the_shingle_hashes() -> None:
    rng = random.Random(1)
    long_row = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "eps"]) + str(i % 50) for i in range(20_000))
    texts = near_copies(60) + [long_row]  # the long row's shingles span several blocks of the permutation step
    step = MinHashDedup(MinHashDedupConfig())
    matrix = step.signature_matrix(texts)
    for text, row in zip(texts, matrix, strict=True):
        assert len(shingle_hashes(text)) == len(shingles(text))  # one hash per shingle: no collisions
        reference = MinHash(num_perm=128, seed=1, scheme="affine64", hashfunc=int)
        reference.update_batch(sorted(shingle_hashes(text)))
        assert np.array_equal(reference.hashvalues, row)


def test_minhash_decide_matches_datasketch_lsh() -> None:
    """The numpy LSH pass keeps and drops the same rows, with the same clusters, as datasketch's MinHashLSH."""
    texts = near_copies()
    config = MinHashDedupConfig()
    step = MinHashDedup(config)
    sigs = step.signatures(text_table(texts), DatasetKind.text)
    rows = np.arange(len(texts), dtype=np.int64) * 2 + 5
    matrix = step.signature_matrix(texts)
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, params=(step.bands, step.band_width))
    expected_drop: list[int] = []
    expected: dict[int, list[tuple[int, float]]] = {}
    for pos, values in enumerate(matrix):
        minhash = LeanMinHash(seed=config.seed, hashvalues=values, scheme="affine64")
        match = next(
            (
                (c, float(np.mean(matrix[c] == values)))
                for c in sorted(lsh.query(minhash))
                if np.mean(matrix[c] == values) >= 0.8
            ),
            None,
        )
        if match is None:
            lsh.insert(pos, minhash)
            continue
        expected_drop.append(int(rows[pos]))
        expected.setdefault(int(rows[match[0]]), []).append((int(rows[pos]), round(match[1], 4)))
    decision = step.decide(rows, sigs)
    assert len(expected_drop) > 40
    assert decision.drop.tolist() == expected_drop
    assert {c.kept: c.removed for c in decision.clusters} == expected
    assert [c.kept for c in decision.clusters] == list(expected)

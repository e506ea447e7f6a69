"""Step math against hand-computed cases (Kohya sd-scripts' arithmetic) and the seed tutorial's example."""

from __future__ import annotations

import pytest

from curator.plan.buckets import BucketSettings, make_buckets, select_bucket
from curator.plan.steps import (
    PlanEntry,
    batches_per_epoch,
    bucket_counts,
    effective_repeats,
    epoch_batches,
    epochs_for_steps,
    iter_epoch_batches,
    seed_formula_stop_step,
    steps_per_epoch,
    text_encoder_stop_step,
    total_steps,
)

S512 = BucketSettings(resolution=512)


def _square(n: int, repeats: int = 1, is_reg: bool = False, prefix: str = "t") -> list[PlanEntry]:
    return [PlanEntry(f"{prefix}{i}.png", 512, 512, repeats, is_reg) for i in range(n)]


def test_bucket_counts_at_the_defaults() -> None:
    assert len(make_buckets(BucketSettings(resolution=512, min_bucket_reso=256, max_bucket_reso=1024))) == 17
    assert len(make_buckets(BucketSettings(resolution=768, min_bucket_reso=256, max_bucket_reso=1024))) == 19


def test_odd_bucket_counts_with_batch_two() -> None:
    # 3 squares and 5 wide images (2:1 -> 704x320), repeats 1, batch 2: ceil(3/2) + ceil(5/2) = 2 + 3 = 5
    entries = _square(3) + [PlanEntry(f"w{i}.png", 1000, 500) for i in range(5)]
    counts = bucket_counts(entries, S512)
    assert counts == {(512, 512): 3, (704, 320): 5}
    assert batches_per_epoch(counts, 2) == 5
    assert steps_per_epoch(counts, 2) == 5
    # a single bucket of 8 would need only 4 batches: bucketing costs a step here
    assert steps_per_epoch({(512, 512): 8}, 2) == 4


def test_repeats_multiply_before_the_ceiling() -> None:
    # 3 images x 5 repeats = 15 in one bucket, batch 4: ceil(15 / 4) = 4 (not 3 x ceil(5/4) = 6)
    counts = bucket_counts(_square(3, repeats=5), S512)
    assert counts == {(512, 512): 15}
    assert steps_per_epoch(counts, 4) == 4


def test_gradient_accumulation_and_gpus() -> None:
    counts = {(512, 512): 15, (704, 320): 6}  # batch 2 -> 8 + 3 = 11 batches
    assert steps_per_epoch(counts, 2) == 11
    assert steps_per_epoch(counts, 2, gradient_accumulation_steps=4) == 3  # ceil(11 / 4)
    assert steps_per_epoch(counts, 2, num_processes=2) == 6  # ceil(11 / 2)
    assert steps_per_epoch(counts, 2, gradient_accumulation_steps=2, num_processes=2) == 3  # ceil(11 / 4)
    assert steps_per_epoch(counts, 2, gradient_accumulation_steps=3, num_processes=2) == 2  # ceil(11 / 6)


def test_regularization_is_matched_to_training_images() -> None:
    # 4 training images x 2 repeats = 8; 3 reg images x 1: first pass 3, then +1 each in turn: 3+1+1+1+1+1 = 8
    entries = _square(4, repeats=2) + _square(3, is_reg=True, prefix="r")
    reps = {e.key: n for e, n in effective_repeats(entries)}
    assert reps == {"t0.png": 2, "t1.png": 2, "t2.png": 2, "t3.png": 2, "r0.png": 3, "r1.png": 3, "r2.png": 2}
    counts = bucket_counts(entries, S512)
    assert counts == {(512, 512): 16}  # doubled
    assert steps_per_epoch(counts, 1) == 16


def test_surplus_regularization_images_are_dropped() -> None:
    # 2 training images; 5 reg images with 1 repeat: only the first two are used
    entries = _square(2) + _square(5, is_reg=True, prefix="r")
    reps = [(e.key, n) for e, n in effective_repeats(entries)]
    assert reps == [("t0.png", 1), ("t1.png", 1), ("r0.png", 1), ("r1.png", 1)]
    # reg folder repeats count in the first pass: 3 training images, a reg image with 10 repeats covers them alone
    entries = _square(3) + [PlanEntry("r.png", 512, 512, 10, True), PlanEntry("s.png", 512, 512, 1, True)]
    assert [(e.key, n) for e, n in effective_repeats(entries)][-1] == ("r.png", 10)


def test_zero_repeats_and_no_training_images() -> None:
    entries = [PlanEntry("a.png", 512, 512, 0)] + _square(2, is_reg=True, prefix="r")
    assert effective_repeats(entries) == []
    assert bucket_counts(entries, S512) == {}
    assert steps_per_epoch({}, 1) == 0


def test_total_steps_and_epochs() -> None:
    assert total_steps(11, max_train_epochs=200) == 2200
    assert total_steps(11, max_train_epochs=3, max_train_steps=5) == 33  # epochs override steps, as in Kohya
    assert total_steps(11, max_train_steps=500) == 500
    assert total_steps(11) == 1600
    assert epochs_for_steps(500, 11) == 46


def test_seed_example_and_the_real_stop_step() -> None:
    assert seed_formula_stop_step(308, 0.4, 200) == 24640
    # the same 308 images with repeats 1 and batch 1 give the same number
    spe = steps_per_epoch({(512, 512): 308}, 1)
    assert text_encoder_stop_step(total_steps(spe, 200), sensitivity=0.4) == 24640
    # with batch 2 and 3 odd buckets the real stop step is about half, not the seed's number
    counts = {(512, 512): 101, (704, 320): 101, (320, 704): 106}
    spe = steps_per_epoch(counts, 2)
    assert spe == 51 + 51 + 53
    assert text_encoder_stop_step(total_steps(spe, 200), sensitivity=0.4) == 12400
    assert text_encoder_stop_step(1000, explicit=123) == 123
    assert text_encoder_stop_step(1000) is None
    assert text_encoder_stop_step(25, sensitivity=0.5) == 13  # half up
    with pytest.raises(ValueError):
        text_encoder_stop_step(100, sensitivity=1.5)


def test_epoch_batches_cover_every_member_and_match_the_count() -> None:
    entries = _square(3, repeats=3) + [PlanEntry(f"w{i}.png", 1000, 500, 2) for i in range(2)]
    counts = bucket_counts(entries, S512)
    plain = epoch_batches(entries, S512, batch_size=4)
    assert [b.bucket for b in plain] == [(512, 512), (512, 512), (512, 512), (704, 320)]
    assert plain[0].keys == ("t0.png", "t0.png", "t0.png", "t1.png")
    assert plain[2].keys == ("t2.png",)
    gen = iter_epoch_batches(entries, S512, batch_size=4, seed=7)
    epochs = [next(gen) for _ in range(3)]
    for batches in epochs:
        assert len(batches) == batches_per_epoch(counts, 4)
        assert sorted(k for b in batches for k in b.keys) == sorted(k for b in plain for k in b.keys)
        assert all(
            select_bucket(*((512, 512) if k.startswith("t") else (1000, 500)), S512).bucket == b.bucket
            for b in batches
            for k in b.keys
        )
    assert epochs[0] != epochs[1]  # reshuffled each epoch
    assert epoch_batches(entries, S512, 4, epoch=2, seed=7) == epochs[2]  # deterministic


def test_bucket_no_upscale_matches_kohya() -> None:
    # expected values computed with Kohya sd-scripts' BucketManager.select_bucket (no_upscale=True, 512, steps 64)
    s = BucketSettings(resolution=512, bucket_no_upscale=True)
    small = select_bucket(300, 200, s)
    assert small.bucket == (256, 192) and small.resized == (300, 200)  # never enlarged, floored to the grid
    big = select_bucket(2000, 1000, s)
    assert big.resized == (640, 320) and big.bucket == (640, 320)
    tall = select_bucket(1000, 3000, s)
    assert tall.resized == (256, 768) and tall.bucket == (256, 768)
    odd = select_bucket(1023, 777, s)
    assert odd.resized == (506, 384) and odd.bucket == (448, 384)  # floored to the grid, then centre-cropped
    assert odd.crop_fraction > 0.1
    exact = select_bucket(512, 512, s)
    assert exact.bucket == (512, 512) and exact.crop_fraction == 0.0


def test_epoch_batches_in_order_equals_fresh_computation() -> None:
    entries = _square(5, repeats=2) + [PlanEntry(f"w{i}.png", 1000, 500, 3) for i in range(3)]
    sequential = [epoch_batches(entries, S512, 3, epoch=e, seed=11) for e in range(4)]
    gen = iter_epoch_batches(entries, S512, 3, seed=11)
    assert sequential == [next(gen) for _ in range(4)]
    assert epoch_batches(entries, S512, 3, epoch=1, seed=11) == sequential[1]  # going back restarts
    assert epoch_batches(entries, S512, 3, epoch=1, seed=12) != sequential[1]

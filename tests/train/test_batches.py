import pytest
import torch

from recsearch.models import ModelConfig
from recsearch.train import RunConfig, TrainConfig, TrainingPairs
from recsearch.train.data import EpochBatches


@pytest.fixture(scope="module")
def pairs(dataset) -> TrainingPairs:
    return TrainingPairs(dataset, RunConfig(model=ModelConfig.matrix_factorization(8), train=TrainConfig()))


def test_epoch_covers_every_pair_once(pairs):
    batches = EpochBatches(pairs, batch_size=300, seed=1, steps_per_group=4)

    steps = [batch for group in batches for batch in group]
    items = torch.cat([batch.item for batch in steps])
    assert items.shape[0] == len(pairs)
    assert torch.equal(torch.sort(items).values, torch.sort(pairs.item).values)
    assert len(batches) == len(list(batches))
    assert all(len(group) <= 4 for group in batches)


def test_epoch_groups_match_plain_batches(pairs):
    grouped = EpochBatches(pairs, batch_size=300, seed=2, steps_per_group=3)
    single = EpochBatches(pairs, batch_size=300, seed=2, steps_per_group=1)

    flat = [batch for group in grouped for batch in group]
    reference = [group[0] for group in single]
    assert len(flat) == len(reference)
    for left, right in zip(flat, reference):
        assert torch.equal(left.user, right.user)
        assert torch.equal(left.item, right.item)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_share_batches_without_gaps(pairs, world_size):
    ranks = [
        EpochBatches(pairs, batch_size=700, seed=3, rank=rank, world_size=world_size, steps_per_group=2)
        for rank in range(world_size)
    ]

    n_steps = [sum(len(group) for group in rank) for rank in ranks]
    assert len(set(n_steps)) == 1
    seen = torch.cat([batch.item for rank in ranks for group in rank for batch in group])
    # Padding repeats the first batches, so every pair is seen at least once.
    assert seen.shape[0] >= len(pairs)
    assert torch.isin(pairs.item, seen).all()


def test_invalid_rank_rejected(pairs):
    with pytest.raises(ValueError, match="rank must be in"):
        EpochBatches(pairs, batch_size=100, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="steps_per_group must be at least 1"):
        EpochBatches(pairs, batch_size=100, seed=0, steps_per_group=0)

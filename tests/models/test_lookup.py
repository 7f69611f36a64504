import torch
from torch import nn

from recsearch.models.embeddings import lookup


def test_lookup_matches_embedding_values_and_gradient():
    torch.manual_seed(0)
    table = nn.Embedding(50, 8)
    index = torch.randint(0, 50, (3, 4000))  # above 3,000 indices, where nn.Embedding switches backward kernel

    expected = table(index)
    expected_grad = torch.autograd.grad((expected * torch.arange(8.0)).sum(), table.weight)[0]
    vectors = lookup(table, index)
    grad = torch.autograd.grad((vectors * torch.arange(8.0)).sum(), table.weight)[0]

    assert vectors.shape == (3, 4000, 8)
    assert torch.equal(vectors, expected)
    assert torch.allclose(grad, expected_grad, atol=1e-4)

"""Export of the user tower to ONNX, so the server embeds recent items with onnxruntime, without torch.

Dimension legend: B batch, N history length, D embedding dimension.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

from recsearch.errors import RecsearchError
from recsearch.model_dir import USER_TOWER_INPUTS as INPUT_NAMES
from recsearch.model_dir import user_tower_feed
from recsearch.models.two_tower import TwoTowerModel
OUTPUT_NAME = "user_vectors"
_OPSET = 17
# Largest difference allowed between torch and onnxruntime outputs, relative to the largest
# output magnitude (at least 1): sums of long histories reach hundreds, where float32
# rounding alone differs by about 1e-6 of the value.
_TOLERANCE = 1e-4


class UserTowerGraph(nn.Module):
    """The network's ``user_vectors`` as a module of three tensor inputs, the traced form for export."""

    def __init__(self, network: TwoTowerModel) -> None:
        super().__init__()
        self.network = network

    def forward(self, user: torch.Tensor, history: torch.Tensor, history_mask: torch.Tensor) -> torch.Tensor:
        # user (B,) int64, history (B, N) int64, history_mask (B, N) bool
        return self.network.user_vectors(user, history, history_mask)  # (B, D)


def export_user_tower(network: TwoTowerModel, *, n_check: int = 64, seed: int = 0) -> bytes:
    """Return the ONNX model of the user tower, checked against torch on random inputs.

    Raises RecsearchError when onnxruntime's output differs from torch's by more than 1e-4
    of the largest output magnitude (at least 1).
    """
    network = network.eval()
    length = network.history_length
    generator = torch.Generator().manual_seed(seed)
    user = torch.randint(0, network.n_users + 1, (n_check,), generator=generator)  # includes the unknown user
    history = torch.randint(0, network.n_items, (n_check, length), generator=generator)
    n_real = torch.randint(0, length + 1, (n_check,), generator=generator)
    history_mask = torch.arange(length).unsqueeze(0) >= (length - n_real).unsqueeze(1)  # left-padded
    history = history * history_mask

    buffer = io.BytesIO()
    batch_axis = {0: "batch"}
    with warnings.catch_warnings():
        # NOTE: the TorchScript-based exporter (dynamo=False) is deprecated since torch 2.9; the
        # torch.export-based one needs the onnxscript package, which recsearch does not install.
        warnings.simplefilter("ignore", DeprecationWarning)
        # The wrapper must be in eval mode too: the exporter restores the wrapper's mode on
        # the whole module tree afterwards, which would switch on the user-id dropout.
        torch.onnx.export(
            UserTowerGraph(network).eval(),
            (user, history, history_mask),
            buffer,
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: batch_axis for name in (*INPUT_NAMES, OUTPUT_NAME)},
            opset_version=_OPSET,
            dynamo=False,
        )
    data = buffer.getvalue()
    _check_against_torch(data, network, user, history, history_mask)
    return data


def declared_inputs(data: bytes) -> list[str]:
    """Return the input names an exported user tower declares (the exporter drops unused ones)."""
    import onnx

    return [node.name for node in onnx.load_from_string(data).graph.input]


def _check_against_torch(
    data: bytes, network: TwoTowerModel, user: torch.Tensor, history: torch.Tensor, history_mask: torch.Tensor
) -> None:
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    (got,) = session.run([OUTPUT_NAME], user_tower_feed(session, user.numpy(), history.numpy(), history_mask.numpy()))
    with torch.no_grad():
        expected = network.user_vectors(user, history, history_mask).numpy()
    difference = float(np.abs(got - expected).max())
    allowed = _TOLERANCE * max(1.0, float(np.abs(expected).max(initial=0.0)))
    if difference > allowed:
        raise RecsearchError(
            f"the ONNX user tower differs from the torch one by {difference:.2e} (allowed {allowed:.1e}); "
            "the network uses an operation the ONNX exporter translates wrongly"
        )

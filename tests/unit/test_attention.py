"""The agents' attention layer: PyTorch's post-norm encoder layer computed with fewer operations, attention in float32."""

import pytest
import torch
from torch import nn

from lightning_mbmarl.nn.attention import AgentAttention, AgentEncoderLayer


def _pair(width: int = 8, heads: int = 2, feedforward: int = 16, dropout: float = 0.0):
    torch.manual_seed(0)
    ours = AgentEncoderLayer(width, heads, feedforward, dropout)
    reference = nn.TransformerEncoderLayer(width, heads, feedforward, dropout, batch_first=True)
    reference.load_state_dict(ours.state_dict())  # the same parameter names: checkpoints load either way
    return ours, reference


def test_hand_worked_uniform_attention_then_layer_norms():
    """Width 2, one head, queries and keys zero (uniform attention over the 2 agents), values and the output
    projection the identity, feed-forward zero: out = norm2(norm1(x + mean over agents of x)).
    x = [[1, 3], [3, 1]]: mean [2, 2]; x + mean = [[3, 5], [5, 3]]; each row normalised over its 2 features: [[-1, 1],
    [1, -1]]; norm2 of that is itself."""
    layer = AgentEncoderLayer(2, 1, 2, 0.0).eval()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.zero_()
        layer.self_attn.in_proj_weight[4:] = torch.eye(2)  # rows 4-5 project the values
        layer.self_attn.out_proj.weight.copy_(torch.eye(2))
        for norm in (layer.norm1, layer.norm2):
            norm.weight.fill_(1.0)
    out = layer(torch.tensor([[[1.0, 3.0], [3.0, 1.0]]]))
    torch.testing.assert_close(out, torch.tensor([[[-1.0, 1.0], [1.0, -1.0]]]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("train", [False, True])
def test_matches_pytorchs_encoder_layer_in_float32(train):
    ours, reference = _pair()
    ours.train(train), reference.train(train)
    x = torch.randn(7, 5, 8, requires_grad=True)
    out_ours, out_reference = ours(x), reference(x)
    torch.testing.assert_close(out_ours, out_reference)
    weights = torch.randn_like(out_ours)
    grads_ours = torch.autograd.grad((out_ours * weights).sum(), [x, *ours.parameters()])
    grads_reference = torch.autograd.grad((out_reference * weights).sum(), [x, *reference.parameters()])
    for a, b in zip(grads_ours, grads_reference, strict=True):
        torch.testing.assert_close(a, b)


def test_bf16_autocast_stays_close_and_attends_in_float32(monkeypatch):
    ours, reference = _pair(width=32, heads=4, feedforward=32)
    x = torch.randn(16, 5, 32)
    attend, dtypes = torch.nn.functional.scaled_dot_product_attention, []
    with torch.autocast("cpu", torch.bfloat16):
        out_reference = reference(x)
        monkeypatch.setattr(
            torch.nn.functional,
            "scaled_dot_product_attention",
            lambda q, k, v, **options: dtypes.append((q.dtype, k.dtype, v.dtype)) or attend(q, k, v, **options),
        )
        out_ours = ours(x)
        monkeypatch.undo()
    assert dtypes == [(torch.float32,) * 3] and out_ours.dtype == torch.float32  # (the layer norms' output dtype)
    exact = reference.float()(x)
    assert (out_ours.float() - exact).abs().max() <= (out_reference.float() - exact).abs().max() + 0.05
    torch.testing.assert_close(out_ours.float(), exact, atol=0.1, rtol=0)


def test_a_bf16_copy_of_the_layer_runs_in_bf16():
    """MAG's look-ahead steps a bf16 copy of the world model, without autocast."""
    ours, reference = _pair(width=32, heads=4, feedforward=32)
    x = torch.randn(16, 5, 32)
    out = ours.to(torch.bfloat16)(x.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference(x), atol=0.1, rtol=0)


def test_dropout_acts_in_train_mode_only():
    ours, reference = _pair(dropout=0.5)
    x = torch.randn(4, 3, 8)
    assert not torch.equal(ours.train()(x), ours(x))
    torch.testing.assert_close(ours.eval()(x), reference.eval()(x))


def test_agent_attention_keeps_leading_shape_and_checks_the_agent_axis():
    attention = AgentAttention(n_agents=3, width=8, layers=2, heads=2, feedforward=16, dropout=0.0)
    assert attention(torch.randn(2, 4, 3, 8)).shape == (2, 4, 3, 8)
    with pytest.raises(ValueError, match=r"\[..., N=3, width\]"):
        attention(torch.randn(2, 4, 8))

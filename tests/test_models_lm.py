"""Tests for rnnkit.models: LanguageModel, make_rnn and the rnnkit / torch.nn backends."""

import pytest
import torch
import torch.nn.functional as F

from rnnkit.models import LanguageModel, make_rnn
from rnnkit.models.factory import rnnkit_layers_available

needs_layers = pytest.mark.skipif(not rnnkit_layers_available(), reason="rnnkit.layers absent")


def test_loss_is_cross_entropy_averaged_over_time_and_batch():
    torch.manual_seed(0)
    m = LanguageModel(7, embedding_size=3, hidden_size=5, num_layers=2, backend="torch")
    x = torch.randint(0, 7, (4, 2))
    y = torch.randint(0, 7, (4, 2))
    loss, state = m.loss(x, y)
    logits, _ = m(x)
    log_p = F.log_softmax(logits, -1).gather(-1, y.unsqueeze(-1))  # (T, B, 1)
    assert loss.item() == pytest.approx(-log_p.mean().item(), abs=1e-6)
    assert state[0].shape == (2, 2, 5)  # LSTM (h, c), each (L, B, H)


def test_full_teacher_forcing_matches_the_step_by_step_path_when_forced():
    torch.manual_seed(0)
    m = LanguageModel(7, embedding_size=3, hidden_size=5, cell="gru", backend="torch")
    x, y = torch.randint(0, 7, (5, 3)), torch.randint(0, 7, (5, 3))
    fast, _ = m.loss(x, y, teacher_forcing=1.0)
    # teacher_forcing just below 1 takes the step-by-step path; the coin always says "truth"
    slow, _ = m.loss(x, y, teacher_forcing=1.0 - 1e-12)
    assert slow.item() == pytest.approx(fast.item(), abs=1e-6)
    free, _ = m.loss(x, y, teacher_forcing=0.0, generator=torch.Generator().manual_seed(1))
    assert abs(free.item() - fast.item()) > 1e-4


def test_tied_weights_share_one_matrix_and_mismatch_is_an_error():
    m = LanguageModel(7, embedding_size=5, hidden_size=5, tie_weights=True, backend="torch")
    assert m.decoder.weight is m.embedding.weight
    with pytest.raises(ValueError, match="embedding_size=4, hidden_size=5"):
        LanguageModel(7, embedding_size=4, hidden_size=5, tie_weights=True)


def test_make_rnn_rejects_unknown_names():
    with pytest.raises(ValueError, match="cell must be one of .* got 'lstmm'"):
        make_rnn("lstmm", 3, 5)
    with pytest.raises(ValueError, match="backend must be one of .* got 'cudnn'"):
        make_rnn("lstm", 3, 5, backend="cudnn")


@needs_layers
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_rnnkit_and_torch_backends_agree(cell):
    torch.manual_seed(0)
    ref = LanguageModel(9, embedding_size=3, hidden_size=5, num_layers=2, cell=cell,
                        backend="torch")
    rk = LanguageModel(**{**ref.config(), "backend": "rnnkit"})
    rk.load_state_dict(ref.state_dict())
    assert type(rk.rnn).__module__.startswith("rnnkit")
    x, y = torch.randint(0, 9, (4, 2)), torch.randint(0, 9, (4, 2))
    loss_ref, _ = ref.loss(x, y)
    loss_rk, _ = rk.loss(x, y)
    loss_ref.backward()
    loss_rk.backward()
    assert loss_rk.item() == pytest.approx(loss_ref.item(), abs=1e-5)
    for (name, p), q in zip(ref.named_parameters(), rk.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)

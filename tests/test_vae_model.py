"""The VAE's networks against independent computations: the half-slice trick,
Hermitian symmetry, the split first layer, positional encodings."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from recon.fourier import hartley_centered, symmetrize_hartley, training_mask
from recon.networks import ResidLinearMLP
from recon.positional import PE_TYPES, PositionalEncoding
from recon.vae import Architecture, HetVAE, kl_divergence


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HetVAE(Architecture(box=16, zdim=3, enc_dim=32, dec_dim=32, dec_layers=2)).eval()


def test_split_first_layer_equals_concatenation():
    torch.manual_seed(1)
    mlp = ResidLinearMLP(10 + 4, 2, 16, 2)
    x, extra = torch.randn(3, 7, 10), torch.randn(3, 4)
    joined = torch.cat([x, extra[:, None, :].expand(3, 7, 4)], -1)
    torch.testing.assert_close(mlp(x, extra), mlp(joined))


def test_half_slice_equals_full_evaluation(model):
    """Evaluating half the slice and mirroring equals evaluating every point."""
    rot = torch.as_tensor(Rotation.random(2, random_state=0).as_matrix(), dtype=torch.float32)
    z = torch.randn(2, 3)
    fast = model.decode_slices(rot, z)
    f = model.decoder(model.coords @ rot, z)
    torch.testing.assert_close(fast, f[..., 0] - f[..., 1], atol=1e-5, rtol=1e-5)


def test_decoder_is_hermitian(model):
    k = torch.rand(50, 3) - 0.5
    z = torch.randn(1, 3)
    a, b = model.decoder(k, z), model.decoder(-k, z)
    torch.testing.assert_close(a[..., 0], b[..., 0])
    torch.testing.assert_close(a[..., 1], -b[..., 1])


def test_volume_central_section_is_the_decoded_slice(model):
    """Fourier slice theorem on the model itself: the kz = 0 plane of the volume's
    3-D Hartley transform is the decoded slice for the identity rotation."""
    z = torch.randn(3)
    vol = torch.as_tensor(model.volume(z), dtype=torch.float64)
    assert vol.shape == (16, 16, 16)
    plane = hartley_centered(vol, 3)[8]  # kz = 0
    lattice = symmetrize_hartley(plane).flatten()[training_mask(16)]
    slice_ = model.decode_slices(torch.eye(3)[None], z[None])[0].double()
    # The +Nyquist row/column of the lattice repeats -Nyquist (one DFT frequency), where
    # the decoder's Hermitian pair differs: compare everywhere else.
    inner = (model.coords[:, :2].abs() < 0.5).all(-1)
    torch.testing.assert_close(lattice[inner], slice_[inner], atol=1e-3 * slice_.abs().max().item(), rtol=0)
    # A smaller box keeps the voxel scale: its mean matches the full map's.
    small = model.volume(z, box=8)
    assert small.shape == (8, 8, 8)
    assert small.mean() == pytest.approx(vol.mean().item(), rel=1e-3)


@pytest.mark.parametrize("pe_type", PE_TYPES)
def test_positional_encodings(pe_type):
    enc = PositionalEncoding(pe_type, 8, 32)
    coords = torch.rand(5, 3) - 0.5
    out = enc(coords)
    assert out.shape == (5, 48)
    np.testing.assert_allclose((out[:, :24] ** 2 + out[:, 24:] ** 2).numpy() if pe_type == "gaussian" else 1.0, 1.0, atol=1e-5)
    assert torch.all(enc(torch.zeros(1, 3)).reshape(-1)[: 24 if pe_type == "gaussian" else 0] == 0)


def test_kl_divergence_closed_form():
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, np.log(4.0)]])
    expected = 0.5 * (1.0) + 0.5 * (4.0 - 1 - np.log(4.0))
    assert kl_divergence(mu, logvar).item() == pytest.approx(expected)

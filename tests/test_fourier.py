"""Fourier primitives against ground truth: numpy transforms, integer rolls,
analytic Gaussians."""

import numpy as np
import pytest
import torch

from recon import fourier


def test_centred_fft_matches_numpy_definition():
    x = torch.randn(3, 16, 16, dtype=torch.float64)
    expected = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x.numpy(), axes=(-2, -1))), axes=(-2, -1))
    np.testing.assert_allclose(fourier.fft_centered(x).numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(fourier.ifft_centered(fourier.fft_centered(x)).real.numpy(), x.numpy(), atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_hartley_is_re_minus_im_and_self_inverse(ndim):
    x = torch.randn(*([8] * ndim), dtype=torch.float64)
    f = fourier.fft_centered(x, ndim)
    h = fourier.hartley_centered(x, ndim)
    np.testing.assert_allclose(h.numpy(), (f.real - f.imag).numpy(), atol=1e-10)
    np.testing.assert_allclose(fourier.ihartley_centered(h, ndim).numpy(), x.numpy(), atol=1e-10)


def test_dc_sits_at_box_centre():
    x = torch.ones(1, 10, 10)
    f = fourier.fft_centered(x)[0].abs()
    assert f[5, 5] == pytest.approx(100.0)
    assert f.sum() == pytest.approx(100.0, rel=1e-5)


def test_symmetrized_lattice_repeats_the_first_row_and_column():
    h = torch.randn(2, 8, 8)
    s = fourier.symmetrize_hartley(h)
    assert s.shape == (2, 9, 9)
    assert torch.equal(s[:, :8, :8], h)
    assert torch.equal(s[:, 8, :8], h[:, 0])
    assert torch.equal(s[:, :8, 8], h[:, :, 0])
    coords = fourier.lattice_coords(8)
    assert coords.shape == (81, 3)
    assert coords[:, :2].min() == -0.5 and coords[:, :2].max() == 0.5
    assert torch.allclose(coords[40], torch.zeros(3))  # centre of the 9 x 9 lattice is DC


def test_circular_mask_radius():
    mask = fourier.circular_mask(16)
    assert mask.shape == (17, 17)
    assert mask[8, 0] and mask[0, 8] and not mask[0, 0]
    assert mask.sum() == sum(1 for i in range(-8, 9) for j in range(-8, 9) if i * i + j * j <= 64)


def test_phase_shift_equals_integer_roll():
    x = torch.randn(2, 16, 16, dtype=torch.float64)
    shifts = torch.tensor([[3.0, -2.0], [-5.0, 4.0]], dtype=torch.float64)  # (x, y) pixels
    out = fourier.shift_images(x, shifts)
    for i, (sx, sy) in enumerate(shifts.long().tolist()):
        expected = torch.roll(x[i], shifts=(sy, sx), dims=(0, 1))  # content moves by +shift
        np.testing.assert_allclose(out[i].numpy(), expected.numpy(), atol=1e-10)


def _gaussian_image(box, centre_px, sigma_px):
    grid = torch.arange(box, dtype=torch.float64) - box // 2
    gy, gx = torch.meshgrid(grid, grid, indexing="ij")
    return torch.exp(-((gx - centre_px[0]) ** 2 + (gy - centre_px[1]) ** 2) / (2 * sigma_px**2))


def test_subpixel_phase_shift_moves_a_gaussian():
    img = _gaussian_image(32, (0.0, 0.0), 2.0)[None]
    out = fourier.shift_images(img, torch.tensor([[1.5, -0.25]], dtype=torch.float64))
    np.testing.assert_allclose(out[0].numpy(), _gaussian_image(32, (1.5, -0.25), 2.0).numpy(), atol=1e-6)


def test_fourier_crop_of_a_band_limited_image_is_the_coarser_sampling():
    """A wide Gaussian sampled at D and cropped to D/2 equals the same Gaussian
    sampled on pixels twice as large, with the mean intensity preserved."""
    big = _gaussian_image(64, (2.0, -4.0), 6.0)
    small = fourier.fourier_crop(big[None], 32)[0]
    expected = _gaussian_image(32, (1.0, -2.0), 3.0)
    np.testing.assert_allclose(small.numpy(), expected.numpy(), atol=1e-4)


def test_fourier_crop_volume_keeps_scale():
    vol = torch.zeros(16, 16, 16, dtype=torch.float64) + 2.5
    np.testing.assert_allclose(fourier.fourier_crop_volume(vol, 8).numpy(), 2.5, atol=1e-12)
    with pytest.raises(ValueError):
        fourier.fourier_crop(torch.zeros(1, 16, 16), 9)

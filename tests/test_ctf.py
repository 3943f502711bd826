"""The CTF against an independent implementation (torch-ctf) and closed-form values."""

import math

import numpy as np
import pytest
import torch
import torch_ctf

import recon.ctf_columns as columns
from recon.ctf import compute_ctf, ctf_from_params, electron_wavelength
from recon.fourier import frequency_grid


def test_wavelength_at_300kv():
    assert electron_wavelength(300.0) == pytest.approx(0.019687, abs=1e-6)


@pytest.mark.parametrize("angle", [0.0, 30.0, 125.0])
def test_matches_torch_ctf_up_to_sign(angle):
    """torch-ctf uses the opposite overall sign and RELION's wavelength constants."""
    apix, box = 1.5, 64
    ours = compute_ctf(frequency_grid(box) / apix, 17000.0, 13000.0, angle, 300.0, 2.7, 0.1)
    theirs = torch_ctf.calculate_ctf_2d(
        defocus=1.5, astigmatism=0.2, astigmatism_angle=angle, voltage=300.0, spherical_aberration=2.7,
        amplitude_contrast=0.1, phase_shift=0.0, pixel_size=apix, image_shape=(box, box), rfft=False, fftshift=True,
    )
    np.testing.assert_allclose(ours.numpy(), -theirs.numpy(), atol=5e-3)


def test_closed_form_values():
    w = 0.1
    dc = compute_ctf(torch.zeros(1, 2), 15000.0, 15000.0, 0.0, 300.0, 0.0, w)
    assert dc.item() == pytest.approx(-w)
    # Without Cs, the first zero is where sqrt(1-w²) sin(gamma) = w cos(gamma),
    # gamma = -pi df lambda s² => s² = (pi - atan(w / sqrt(1-w²))) / (pi df lambda).
    df, lam = 15000.0, electron_wavelength(300.0)
    s_zero = math.sqrt((math.pi - math.atan(w / math.sqrt(1 - w * w))) / (math.pi * df * lam))
    c = compute_ctf(torch.tensor([[s_zero, 0.0], [0.0, s_zero]], dtype=torch.float64), df, df, 0.0, 300.0, 0.0, w)
    np.testing.assert_allclose(c.numpy(), 0.0, atol=1e-9)
    # A 90° phase shift makes gamma(0) = -pi/2: CTF(0) = -sqrt(1 - w²)
    ps = compute_ctf(torch.zeros(1, 2), df, df, 0.0, 300.0, 2.7, w, phase_shift=90.0)
    assert ps.item() == pytest.approx(-math.sqrt(1 - w * w))


def test_column_constants_name_the_columns():
    expected = {
        "CTF_BOX": "box_px", "CTF_APIX": "apix_A", "CTF_DEFOCUS_U": "defocus_u_A", "CTF_DEFOCUS_V": "defocus_v_A",
        "CTF_DEFOCUS_ANGLE": "defocus_angle_deg", "CTF_VOLTAGE": "voltage_kV", "CTF_CS": "cs_mm",
        "CTF_AMPLITUDE_CONTRAST": "amplitude_contrast", "CTF_PHASE_SHIFT": "phase_shift_deg",
    }
    assert {name: columns.CTF_COLUMNS[getattr(columns, name)] for name in expected} == expected
    assert len(expected) == len(columns.CTF_COLUMNS)


def test_astigmatism_angle_is_measured_from_x():
    s = 0.05
    along_x = compute_ctf(torch.tensor([[s, 0.0]], dtype=torch.float64), 20000.0, 10000.0, 0.0, 300.0, 2.7, 0.1)
    only_u = compute_ctf(torch.tensor([[s, 0.0]], dtype=torch.float64), 20000.0, 20000.0, 0.0, 300.0, 2.7, 0.1)
    assert along_x.item() == pytest.approx(only_u.item())


def test_batched_parameter_rows_and_bfactor():
    params = torch.tensor(
        [[64, 2.0, 15000, 14000, 10, 300, 2.7, 0.1, 0], [64, 1.0, 25000, 25000, 0, 200, 2.0, 0.07, 30]],
        dtype=torch.float64,
    )
    freqs = frequency_grid(64, dtype=torch.float64).reshape(-1, 2)
    c = ctf_from_params(freqs, params)
    assert c.shape == (2, 64 * 64)
    for i in range(2):
        p = params[i]
        single = compute_ctf(freqs / p[1], *p[2:9])
        np.testing.assert_allclose(c[i].numpy(), single.numpy(), atol=1e-12)
    damped = compute_ctf(freqs / 2.0, 15000, 15000, 0, 300, 2.7, 0.1, bfactor=100.0)
    plain = compute_ctf(freqs / 2.0, 15000, 15000, 0, 300, 2.7, 0.1)
    s2 = (freqs / 2.0).pow(2).sum(-1)
    np.testing.assert_allclose(damped.numpy(), (plain * torch.exp(-25.0 * s2)).numpy(), atol=1e-12)

"""Real RELION/cryoSPARC files parse to what cryoDRGN 4.3.1 parses from them."""

import warnings

import numpy as np
import pytest

from recon.errors import InputError
from recon.io import read_metadata, read_particles, write_stack

CASES = [
    ("relion31.star", "relion31", {}),
    ("relion31.v2.star", "relion31", {}),
    ("relion31.6opticsgroups.star", "relion31_6og", {}),
    ("relion5.star", "relion5", {}),
    ("FinalRefinement-OriginalParticles-PfCRT.star", "pfcrt", dict(box=300, apix=1.035, amplitude_contrast=0.1)),
    ("cryosparc_P12_J24_001_particles.cs", "csparc", dict(box=180)),
]


def _read_quietly(path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the mixed-pixel-size notice
        return read_metadata(path, **options)


@pytest.mark.parametrize("name, expected, options", CASES, ids=[c[0] for c in CASES])
def test_matches_cryodrgn(formats_dir, name, expected, options):
    meta = _read_quietly(formats_dir / name, **options)
    ref = np.load(formats_dir / "expected" / f"{expected}.npz")
    assert len(meta) == len(ref["rot"])
    np.testing.assert_allclose(meta.rotations, ref["rot"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(meta.ctf, ref["ctf"], rtol=1e-5, atol=1e-5)
    # cryoDRGN's trans is the re-centring shift in pixels over the box, same sign.
    np.testing.assert_allclose(meta.shifts_px / meta.box, ref["trans_frac"], rtol=1e-5, atol=1e-5)
    assert meta.box == int(ref["ctf"][0, 0])


def test_trans_frac_has_the_sign_of_the_relion_origin(formats_dir):
    meta = read_metadata(formats_dir / "relion31.star")
    ref = np.load(formats_dir / "expected" / "relion31.npz")
    origin_px = meta.table[["rlnOriginXAngst", "rlnOriginYAngst"]].to_numpy() / 2.806
    np.testing.assert_allclose(ref["trans_frac"] * 256, origin_px, rtol=1e-6, atol=1e-9)


def test_optics_groups_keep_their_own_pixel_size(formats_dir):
    with pytest.warns(UserWarning, match="pixel sizes"):
        meta = read_metadata(formats_dir / "relion31.6opticsgroups.star")
    groups = meta.table["rlnOpticsGroup"].to_numpy()
    per_group = meta.optics.set_index("rlnOpticsGroup")["rlnImagePixelSize"]
    np.testing.assert_array_equal(meta.ctf[:, 1], per_group.loc[groups].to_numpy())
    assert meta.apix == 1.25  # the pixel size most particles share
    assert set(np.unique(meta.ctf[:, 6])) == {2.6, 2.7}  # Cs differs per group too


def test_relion30_without_box_leaves_it_unknown(formats_dir):
    meta = read_metadata(formats_dir / "FinalRefinement-OriginalParticles-PfCRT.star", amplitude_contrast=0.1)
    assert meta.box is None and np.isnan(meta.ctf[:, 0]).all()
    assert meta.apix == pytest.approx(1.035)  # 1e4 * rlnDetectorPixelSize / rlnMagnification
    assert meta.image_names[0] == "000001@Extract/job012/FinalRefinement-OriginalParticles-PfCRT.mrcs"


def test_empiar_star_cs_and_mrc_give_the_same_particles(formats_dir):
    star = read_particles(formats_dir / "empiar_10076_7.star")
    cs = read_particles(formats_dir / "empiar_10076_7.cs")
    mrc = read_particles(formats_dir / "empiar_10076_7.mrc")
    assert star.meta.apix == pytest.approx(1.31, abs=1e-4)  # 1e4 * 5 µm / 38168
    assert cs.meta.apix == pytest.approx(1.31, abs=1e-4)
    np.testing.assert_allclose(star.meta.ctf, cs.meta.ctf, rtol=1e-5, atol=1e-5)
    images = star.images[:]
    assert images.shape == (7, 320, 320) and images.dtype == np.float32
    np.testing.assert_array_equal(images, cs.images[:])
    np.testing.assert_array_equal(images, mrc.images[:])
    assert star.meta.box == 320 and star.meta.ctf[0, 0] == 320


def test_relion31_with_its_stack(formats_dir):
    particles = read_particles(formats_dir / "relion31.star", lazy=False)
    assert particles.meta.image_names[0] == "000001@relion31.mrcs"
    assert particles.images.files == [formats_dir / "relion31.mrcs"]
    assert particles.images[:].shape == (5, 256, 256)
    assert np.isfinite(particles.images[4]).all()


def test_relion5_multi_stack_through_datadir(formats_dir, tmp_path):
    with pytest.raises(InputError, match="toy_images_a.mrcs.*datadir"):
        read_particles(formats_dir / "relion5.star")
    rng = np.random.default_rng(0)
    stacks = {name: rng.normal(size=(n, 448, 448)).astype(np.float32) for name, n in [("a", 10), ("b", 11)]}
    for name, images in stacks.items():
        write_stack(tmp_path / f"toy_images_{name}.mrcs", images, 0.89)
    particles = read_particles(formats_dir / "relion5.star", datadir=tmp_path)
    for i in (0, 1, 16):
        index, stack = particles.meta.image_names[i].split("@")
        expected = stacks[stack[len("toy_images_")]][int(index) - 1]
        np.testing.assert_array_equal(particles.images[i], expected)


def test_cryosparc_2d_only_has_no_poses(formats_dir):
    meta = read_metadata(formats_dir / "cryosparc_J2_particles_exported.cs")
    assert meta.rotations is None and meta.shifts_px is None
    assert meta.ctf.shape == (22, 9) and meta.box == 300
    assert not meta.image_names[0].split("@")[1].startswith(">")
    with pytest.raises(InputError, match="no 3-D poses.*Fix: .*pose.pkl"):
        meta.require_poses()


def test_cryosparc_stacks_are_looked_up_from_the_project(formats_dir):
    with pytest.raises(InputError, match=r"blob/path.*Fix: pass --datadir .*datadir= in Python"):
        read_particles(formats_dir / "cryosparc_P12_J24_001_particles.cs")

"""Text-to-image latent diffusion on captioned shapes: SDXL-style UNet vs SD3-style MMDiT. Prints JSON.

Everything is trained here, per seed, on one CPU thread (run seeds side by side
as separate processes on a multi-core machine):

1. the judges: a :class:`generative.judges.ShapeClassifier` per shorter image
   side (32 px; 24 px for both wide buckets) on real renders; per-attribute
   accuracy on fresh renders;
2. the first stage: a KL autoencoder (factor 4, 4 latent channels); PSNR and the
   judge's accuracy on reconstructions;
3. the training set: renders of the training split (held-out (shape, colour)
   pairs never appear) in three aspect buckets (32x32, 24x40, 40x24), a fraction
   cropped from a padded canvas (crop top-left 0..8 px) and a fraction rendered
   at half resolution and upsampled; encoded once by the frozen autoencoder;
4. two text-to-latent models with the same conditioner (a small text encoder
   trained jointly, tokens + pooled text; original size, crop and target size
   embedded sinusoidally) and rectified flow (logit-normal t): an SDXL-style UNet
   (cross-attention, vector conditioning) and an MMDiT, at equal parameter count,
   trained for the same number of steps on bucketed batches; the faster one then
   trains on until both have used the same wall time;
5. evaluations with ``flow_euler``, 20 steps: a guidance sweep (attribute
   accuracy and Frechet distance in the judge's feature space, with the
   real-vs-real floor), held-out combinations, every bucket, crop conditioning
   (the object's centroid moves by the requested offset), original-size
   conditioning (high-frequency energy of samples asked to look like 16-px
   renders vs 32-px ones, against the same ratio in real renders), and a refiner
   (trained on flow times t < 0.3 only) applied by SDEdit at strength 0.3 to the
   samples of an under-trained base (the MMDiT's trained weights after a fifth of its steps; its EMA
   at decay 0.999 would still be mostly the initial weights).

    python benchmarks/shapes_ldm.py --seed 0 --out /tmp/ldm0 [--quick] [--figures docs/images]

``--quick`` runs every stage at a tiny budget (a smoke test, not numbers).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from generative.autoencoder import AutoencoderKL, psnr, train_autoencoder
from generative.blocks.mmdit import MMDiT
from generative.blocks.unet import UNet
from generative.buckets import BucketSampler
from generative.conditioning import Conditioner, ScalarEmbedder, TextEmbedder
from generative.data.shapes import CAPTION_LENGTH, VOCABULARY, ShapeObject, render_scenes, sample_shapes
from generative.formulations import RectifiedFlow
from generative.img2img import sdedit
from generative.judges import prompt_adherence, train_shape_classifier
from generative.latent_diffusion import LatentDiffusion
from generative.metrics import frechet_distance
from generative.text import TextEncoder
from generative.trainer import Trainer

BUCKETS = ((32, 32), (24, 40), (40, 24))
MAX_CROP = 8
CONDITION_KEYS = ("tokens", "original_size", "crop", "target_size")

FULL = dict(judge_steps=600, ae_steps=1000, ae_base=8, ae_images=6000, train_images=8000, steps=4000, batch=64,
            refiner_steps=2000, eval_n=400, guidance=(1.0, 2.0, 3.0, 5.0), text_dim=32, scalar_dim=16,
            mmdit=dict(dim=64, depth=3, heads=4), unet=dict(base=24, mults=(1, 2), attention_levels=(0, 1), heads=4))
QUICK = dict(judge_steps=40, ae_steps=40, ae_base=8, ae_images=256, train_images=128, steps=30, batch=16,
             refiner_steps=20, eval_n=24, guidance=(1.0, 3.0), text_dim=16, scalar_dim=8,
             mmdit=dict(dim=32, depth=2, heads=2), unet=dict(base=16, mults=(1, 2), attention_levels=(1,), heads=2))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- judge and first stage

def train_judges(cfg: dict, seed: int) -> dict:
    """One judge per shorter image side: an object's radius is a fraction of ``min(H, W)``, so a large
    object in a 24-px-high frame is about as big as a small one in a 32-px frame and one judge
    cannot tell them apart without knowing the frame."""
    sides = sorted({min(h, w) for h, w in BUCKETS})
    return {side: train_shape_classifier(cfg["judge_steps"], batch_size=32, sizes=[b for b in BUCKETS if min(b) == side],
                                         seed=seed) for side in sides}


def judge_for(judges: dict, images: torch.Tensor):
    return judges[min(images.shape[-2:])]


def judge_accuracy(judges, seed: int, n: int) -> dict:
    """Per-attribute accuracy of the judges on fresh full-resolution renders of each bucket."""
    out = {}
    for h, w in BUCKETS:
        batch = sample_shapes(n, h, w, split="all", generator=10_000 + seed)
        out[f"{h}x{w}"] = prompt_adherence(judge_for(judges, batch["image"]), batch["image"], batch)
    return out


def train_first_stage(cfg: dict, seed: int):
    images = sample_shapes(cfg["ae_images"], 32, 32, split="all", crop_fraction=0.5, max_crop=MAX_CROP,
                           lowres_fraction=0.3, generator=20_000 + seed)["image"]  # convolutional: any bucket after
    torch.manual_seed(seed)
    ae = AutoencoderKL(base=cfg["ae_base"], mults=(1, 2, 2), groups=2)
    # squared error: with L1 the model learns these mostly black images one colour at a time (docs/image_ldm.md)
    trainer, records = train_autoencoder(ae, images, cfg["ae_steps"], lr=3e-3, batch_size=16, seed=seed,
                                         ema_decay=0.99, reconstruction="l2", log_every=max(1, cfg["ae_steps"] // 10))
    ae = trainer.model.eval().requires_grad_(False)  # an EMA of a short run still carries the initial weights
    ae.fit_scale_factor(images)
    return ae, records


@torch.no_grad()
def first_stage_quality(ae, judges, seed: int, n: int) -> dict:
    out = {}
    for h, w in BUCKETS:
        batch = sample_shapes(n, h, w, split="all", generator=30_000 + seed)
        recon = ae.from_latent(ae.to_latent(batch["image"])).clamp(-1, 1)
        out[f"{h}x{w}"] = {"psnr_db": psnr(recon, batch["image"]).mean().item(),
                           **{f"judge_{k}": v for k, v in prompt_adherence(judge_for(judges, recon), recon, batch).items()}}
    return out


# ---------------------------------------------------------------- training set and models

@torch.no_grad()
def latent_set(ae, cfg: dict, seed: int) -> dict:
    """Per bucket: the conditions and latents of ``train_images`` renders of the training split."""
    data = {}
    for k, (h, w) in enumerate(BUCKETS):
        batch = sample_shapes(cfg["train_images"], h, w, split="train", crop_fraction=0.5, max_crop=MAX_CROP,
                              lowres_fraction=0.3, generator=40_000 + 10 * seed + k)
        latent = torch.cat([ae.to_latent(part) for part in batch["image"].split(512)])
        data[(h, w)] = {key: batch[key] for key in CONDITION_KEYS} | {"latent": latent}
    return data


def conditioner(cfg: dict) -> Conditioner:
    text = TextEncoder(len(VOCABULARY), dim=cfg["text_dim"], depth=2, heads=4 if cfg["text_dim"] % 4 == 0 else 2,
                       length=CAPTION_LENGTH)
    s = cfg["scalar_dim"]
    return Conditioner([TextEmbedder("tokens", text, drop_rate=0.1), ScalarEmbedder("original_size", s, 0.05),
                        ScalarEmbedder("crop", s, 0.05), ScalarEmbedder("target_size", s, 0.05)])


def vector_dim(cfg: dict) -> int:
    return cfg["text_dim"] + 3 * 2 * cfg["scalar_dim"]


def build(kind: str, cfg: dict, seed: int, t_max: float = 1.0) -> LatentDiffusion:
    torch.manual_seed(seed)
    if kind == "mmdit":
        net = MMDiT(4, cfg["text_dim"], vector_dim(cfg), patch=2, pos_grid=8, **cfg["mmdit"])
    else:
        net = UNet(4, 4, vector_dim=vector_dim(cfg), context_dim=cfg["text_dim"], time_embed_dim=128, **cfg["unet"])
    return LatentDiffusion(net, conditioner(cfg), RectifiedFlow(t_max=t_max))


def trainer_for(model: LatentDiffusion, data: dict, cfg: dict, seed: int) -> Trainer:
    buckets = BucketSampler(list(data), seed=seed)

    def batch_fn(step, generator):
        part = data[buckets(step)]
        index = torch.randint(len(part["latent"]), (cfg["batch"],), generator=generator)
        return {key: value[index] for key, value in part.items()}

    return Trainer(model, lambda m, batch, g: m.loss(batch, g), batch_fn, lr=1e-3, ema_decay=0.999, seed=seed,
                   log_every=max(1, cfg["steps"] // 20))


def fit(trainer: Trainer, steps: int, snapshots=()) -> dict:
    """Train to ``steps``; returns wall seconds, the log and copies of the trained (not EMA) weights at the
    ``snapshots`` steps."""
    start, copies, records = time.time(), {}, []
    for target in sorted({*snapshots, steps}):
        records += trainer.fit(target)
        if target in snapshots:
            copies[target] = copy.deepcopy(trainer.model)
    return {"seconds": time.time() - start, "records": records, "snapshots": copies}


def fit_for(trainer: Trainer, seconds: float, chunk: int = 50) -> dict:
    """Train on in chunks of ``chunk`` steps until ``seconds`` more wall time is used."""
    start = time.time()
    while time.time() - start < seconds:
        trainer.fit(trainer.step + chunk)
    return {"seconds": time.time() - start, "steps": trainer.step}


# ---------------------------------------------------------------- evaluation

def conditions(batch: dict) -> dict:
    return {key: batch[key] for key in CONDITION_KEYS}


@torch.no_grad()
def generate(model: LatentDiffusion, ae, batch: dict, guidance: float, seed: int, steps: int = 20) -> torch.Tensor:
    h, w = (int(v) for v in batch["target_size"][0].tolist())
    g = torch.Generator().manual_seed(seed)
    out = []
    for index in torch.arange(len(batch["tokens"])).split(200):
        part = {key: value[index] for key, value in conditions(batch).items()}
        z = model.sample(part, (4, h // 4, w // 4), guidance=guidance, solver="flow_euler", steps=steps, generator=g)
        out.append(ae.from_latent(z).clamp(-1, 1))
    return torch.cat(out)


def prompts(n: int, h: int, w: int, split: str, seed: int) -> dict:
    """Full-resolution, uncropped prompts (and their real renders) of ``split``."""
    return sample_shapes(n, h, w, split=split, generator=seed)


def score(judges, images, batch, real_features, floor) -> dict:
    judge = judge_for(judges, images)
    out = prompt_adherence(judge, images, batch)
    out["frechet"] = frechet_distance(judge.features(images), real_features)
    out["frechet_over_floor"] = out["frechet"] / floor
    return out


def real_reference(judges, n: int, h: int, w: int, split: str, seed: int):
    """Features of ``n`` real renders and the real-vs-real Frechet floor at that size."""
    a = sample_shapes(n, h, w, split=split, generator=50_000 + seed)["image"]
    b = sample_shapes(n, h, w, split=split, generator=60_000 + seed)["image"]
    judge = judge_for(judges, a)
    fa = judge.features(a)
    return fa, frechet_distance(judge.features(b), fa)


def evaluate(model, ae, judges, cfg, seed) -> dict:
    n, h, w = cfg["eval_n"], *BUCKETS[0]
    real, floor = real_reference(judges, n, h, w, "train", seed)
    batch = prompts(n, h, w, "train", 70_000 + seed)
    sweep = {}
    for scale in cfg["guidance"]:
        sweep[scale] = score(judges, generate(model, ae, batch, scale, seed), batch, real, floor)
        log(f"  guidance {scale}: {json.dumps({k: round(v, 3) for k, v in sweep[scale].items()})}")
    best = max(sweep, key=lambda s: (sweep[s]["all"], -sweep[s]["frechet"]))
    held_real, held_floor = real_reference(judges, n, h, w, "heldout", seed)
    held = prompts(n, h, w, "heldout", 80_000 + seed)
    buckets = {}
    for bh, bw in BUCKETS:
        b = prompts(n, bh, bw, "train", 90_000 + seed)
        images = generate(model, ae, b, best, seed)
        buckets[f"{bh}x{bw}"] = prompt_adherence(judge_for(judges, images), images, b)
    return {"frechet_floor": floor, "guidance_sweep": sweep, "best_guidance": best,
            "heldout_at_best": score(judges, generate(model, ae, held, best, seed), held, held_real, held_floor),
            "buckets_at_best": buckets}


def colour_centroid(images: torch.Tensor, colour: str) -> torch.Tensor:
    """Centroid ``[N, 2]`` (y, x, pixel centres at i + 0.5) of the pixels showing ``colour`` (by channel signs)."""
    signs = {"red": (1, -1, -1), "green": (-1, 1, -1), "blue": (-1, -1, 1), "yellow": (1, 1, -1)}[colour]
    s = torch.tensor(signs, dtype=images.dtype)[None, :, None, None]
    weight = (images * s).clamp(min=0).prod(1)  # [N, H, W], > 0 where every channel has the colour's sign
    h, w = images.shape[-2:]
    ys, xs = torch.arange(h) + 0.5, torch.arange(w) + 0.5
    total = weight.sum((1, 2)).clamp(min=1e-8)
    return torch.stack([(weight.sum(2) * ys).sum(1) / total, (weight.sum(1) * xs).sum(1) / total], 1)


def crop_check(model, ae, cfg, guidance, seed) -> dict:
    """A large red circle at the bottom right asked for with crop (c, c): its centroid should move by -c."""
    n = max(8, cfg["eval_n"] // 4)
    scene = [ShapeObject("circle", "red", "large", "bottom right")]
    real0 = colour_centroid(render_scenes([scene], 32, 32)["image"], "red")[0]
    out = {}
    centroids = {}
    for c in (0, 4, 8):
        batch = render_scenes([scene] * n, 32, 32, crop=[[c, c]] * n)
        centroids[c] = colour_centroid(generate(model, ae, batch, guidance, seed), "red")
        truth = real0 - c
        out[f"crop_{c}"] = {"mean_centroid": centroids[c].mean(0).tolist(), "requested": truth.tolist(),
                            "mean_abs_error_px": (centroids[c] - truth).abs().mean().item()}
    for c in (4, 8):
        shift = (centroids[c].mean(0) - centroids[0].mean(0))
        out[f"crop_{c}"]["mean_shift_px"] = shift.tolist()
        out[f"crop_{c}"]["shift_error_px"] = (shift + c).abs().mean().item()
    return out


def high_frequency_energy(images: torch.Tensor) -> float:
    """Fraction of the (mean-removed) power above half the Nyquist frequency (radially), averaged."""
    x = images - images.mean((-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2).sum(1)  # [N, H, W]
    h, w = power.shape[-2:]
    fy, fx = torch.fft.fftfreq(h)[:, None], torch.fft.fftfreq(w)[None, :]
    high = (fy ** 2 + fx ** 2).sqrt() > 0.25
    return (power[:, high].sum(1) / power.flatten(1).sum(1).clamp(min=1e-12)).mean().item()


def size_check(model, ae, cfg, guidance, seed) -> dict:
    """Samples asked for original size 16 vs 32: their high-frequency energy ratio against real renders'."""
    n = cfg["eval_n"] // 2
    batch = prompts(n, 32, 32, "train", 100_000 + seed)
    out = {}
    for size in (16, 32):
        b = dict(batch, original_size=torch.full((n, 2), float(size)))
        real = render_scenes_like(batch, size)
        out[size] = {"samples": high_frequency_energy(generate(model, ae, b, guidance, seed)),
                     "real": high_frequency_energy(real)}
    sample_ratio = out[16]["samples"] / out[32]["samples"]
    real_ratio = out[16]["real"] / out[32]["real"]
    return {"hf_energy": out, "sample_ratio_16_over_32": sample_ratio, "real_ratio_16_over_32": real_ratio,
            "relative_error": abs(sample_ratio / real_ratio - 1)}


def render_scenes_like(batch: dict, size: int) -> torch.Tensor:
    """Real renders of the scenes behind ``batch`` (re-drawn from its labels, no jitter) at original size ``size``."""
    from generative.data.shapes import COLOURS, QUADRANTS, SHAPES, SIZES

    scenes = []
    for s, c, z in zip(batch["quadrant_shape"].tolist(), batch["quadrant_colour"].tolist(), batch["quadrant_size"].tolist()):
        scenes.append([ShapeObject(SHAPES[s[q] - 1], COLOURS[c[q] - 1], SIZES[z[q] - 1], QUADRANTS[q])
                       for q in range(4) if s[q]])
    return render_scenes(scenes, 32, 32, original_size=[[size, size]] * len(scenes))["image"]


def refiner_check(base, refiner, ae, judges, cfg, guidance, seed) -> dict:
    n, (h, w) = cfg["eval_n"], BUCKETS[0]
    real, floor = real_reference(judges, n, h, w, "train", seed)
    batch = prompts(n, h, w, "train", 110_000 + seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = base.sample(conditions(batch), (4, h // 4, w // 4), guidance=guidance, solver="flow_euler", steps=20, generator=g)
        before = score(judges, ae.from_latent(z).clamp(-1, 1), batch, real, floor)
        denoise, cond = refiner.denoiser(conditions(batch), guidance)
        grid = refiner.formulation.grid("flow_euler", 20)
        refined = sdedit(denoise, z, grid, 0.3, "flow_euler", generator=g, cond=cond)
        after = score(judges, ae.from_latent(refined).clamp(-1, 1), batch, real, floor)
    return {"base": before, "refined": after, "frechet_change": after["frechet"] / before["frechet"] - 1,
            "accuracy_change_points": 100 * (after["all"] - before["all"])}


# ---------------------------------------------------------------- figures

def save_grids(models: dict, ae, cfg, guidance: dict, seed: int, folder: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    scenes = [[ShapeObject("circle", "red", "large", "top left")],
              [ShapeObject("square", "yellow", "small", "bottom right")],
              [ShapeObject("triangle", "green", "large", "top right"), ShapeObject("circle", "blue", "small", "bottom left")],
              [ShapeObject("triangle", "red", "large", "bottom left")]]  # the last is a held-out pair
    per_prompt = 6
    for name, model in models.items():
        fig, axes = plt.subplots(len(scenes), per_prompt + 1, figsize=(1.4 * (per_prompt + 1), 1.5 * len(scenes)))
        for row, scene in enumerate(scenes):
            batch = render_scenes([scene] * per_prompt, 32, 32)
            images = generate(model, ae, batch, guidance[name], seed)
            panels = [batch["image"][0]] + list(images)
            for col, image in enumerate(panels):
                ax = axes[row, col]
                ax.imshow(((image.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
                ax.set_xticks([]), ax.set_yticks([])
            axes[row, 0].set_title("render", fontsize=7)
            axes[row, 1].set_title(batch["caption"][0], fontsize=7, loc="left")
        fig.suptitle(f"{name}, guidance {guidance[name]:g}: the render, then {per_prompt} samples per prompt", fontsize=9)
        path = folder / f"shapes_{name}_prompts.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(str(path))
    # buckets and crops with the MMDiT
    model = models["mmdit"]
    fig, axes = plt.subplots(2, 3, figsize=(8, 5.5))
    scene = [ShapeObject("circle", "red", "large", "bottom right"), ShapeObject("square", "blue", "small", "top left")]
    for col, (h, w) in enumerate(BUCKETS):
        image = generate(model, ae, render_scenes([scene], h, w), guidance["mmdit"], seed)[0]
        axes[0, col].imshow(((image.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
        axes[0, col].set_title(f"bucket {h}x{w}", fontsize=8)
    for col, c in enumerate((0, 4, 8)):
        image = generate(model, ae, render_scenes([scene], 32, 32, crop=[[c, c]]), guidance["mmdit"], seed)[0]
        axes[1, col].imshow(((image.permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy())
        axes[1, col].set_title(f"crop top-left ({c}, {c})", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    fig.suptitle("MMDiT: " + render_scenes([scene], 32, 32)["caption"][0], fontsize=8)
    path = folder / "shapes_buckets_and_crops.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    written.append(str(path))
    return written


def plot_sweep(results: dict, path: Path) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name in ("unet", "mmdit"):
        sweep = results[name]["eval"]["guidance_sweep"]
        scales = sorted(sweep)
        a.plot(scales, [sweep[s]["all"] for s in scales], "o-", label=f"{name}: all four right")
        a.plot(scales, [sweep[s]["colour"] for s in scales], "x--", label=f"{name}: colour")
        b.plot(scales, [sweep[s]["frechet"] for s in scales], "o-", label=name)
    b.axhline(results["mmdit"]["eval"]["frechet_floor"], color="grey", ls=":", label="real vs real floor")
    a.set_xlabel("guidance scale"), a.set_ylabel("accuracy"), a.legend(fontsize=7)
    b.set_xlabel("guidance scale"), b.set_ylabel("Frechet distance (judge features)"), b.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


# ---------------------------------------------------------------- main

def refiner_only(cfg: dict, seed: int, guidance: float) -> dict:
    """The refiner row of a full run, alone (see ``--refiner-only``)."""
    log("judges, autoencoder")
    judges = train_judges(cfg, seed)
    ae, _ = train_first_stage(cfg, seed)
    data = latent_set(ae, cfg, seed)
    base = build("mmdit", cfg, seed)
    log(f"mmdit base: {cfg['steps'] // 5} steps")
    fit(trainer_for(base, data, cfg, seed), cfg["steps"] // 5)
    log(f"refiner: {cfg['refiner_steps']} steps on t < 0.3")
    refiner = build("mmdit", cfg, seed + 1000, t_max=0.3)
    refiner_trainer = trainer_for(refiner, data, dict(cfg, steps=cfg["refiner_steps"]), seed + 1000)
    fit(refiner_trainer, cfg["refiner_steps"])
    out = refiner_check(base.eval(), refiner_trainer.ema.eval(), ae, judges, cfg, guidance, seed)
    return {"refiner": out | {"base_steps": cfg["steps"] // 5, "guidance": guidance}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="every stage at a tiny budget (smoke test)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, help="training steps of each text-to-image model (default by budget)")
    parser.add_argument("--ae-steps", type=int, help="autoencoder training steps (default by budget)")
    parser.add_argument("--figures", type=Path, help="folder for sample grids and the guidance plot")
    parser.add_argument("--refiner-only", type=float, metavar="GUIDANCE",
                        help="only the refiner check, at this guidance (the MMDiT's best of a full run): trains the "
                             "judges, the autoencoder, the MMDiT to a fifth of its steps (the same weights as the full "
                             "run's snapshot) and the refiner")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = dict(QUICK if args.quick else FULL)
    if args.steps:
        cfg["steps"] = args.steps
        cfg["refiner_steps"] = args.steps // 2
    if args.ae_steps:
        cfg["ae_steps"] = args.ae_steps
    seed, t0 = args.seed, time.time()
    result = {"seed": seed, "config": {k: v for k, v in cfg.items()}, "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "torch": torch.__version__}

    if args.refiner_only is not None:
        print(json.dumps(refiner_only(cfg, seed, args.refiner_only) | result | {"seconds": time.time() - t0}))
        return
    log("judges")
    judges = train_judges(cfg, seed)
    result["judge"] = judge_accuracy(judges, seed, cfg["eval_n"])
    log(f"judge: {json.dumps(result['judge']['32x32'])}")

    log("autoencoder")
    ae, ae_log = train_first_stage(cfg, seed)
    result["autoencoder"] = {"parameters": parameters(ae), "scale_factor": ae.scale_factor.item(),
                             "loss_first": ae_log[0]["loss"], "loss_last": ae_log[-1]["loss"],
                             **first_stage_quality(ae, judges, seed, cfg["eval_n"])}
    log(f"autoencoder: {json.dumps(result['autoencoder']['32x32'])}")
    data = latent_set(ae, cfg, seed)

    models, trainers, fits = {}, {}, {}
    for kind in ("unet", "mmdit"):
        models[kind] = build(kind, cfg, seed)
        trainers[kind] = trainer_for(models[kind], data, cfg, seed)
        log(f"{kind}: {parameters(models[kind])} parameters; training {cfg['steps']} steps")
        snapshots = (cfg["steps"] // 5,) if kind == "mmdit" else ()
        fits[kind] = fit(trainers[kind], cfg["steps"], snapshots)
        log(f"{kind}: {fits[kind]['seconds']:.0f} s, loss {fits[kind]['records'][0]['loss']:.3f} -> {fits[kind]['records'][-1]['loss']:.3f}")
    for kind in models:
        net = models[kind].model
        result[kind] = {"parameters": parameters(models[kind]), "network_parameters": parameters(net),
                        "train_seconds": fits[kind]["seconds"], "steps": cfg["steps"],
                        "loss": [(r["step"], r["loss"]) for r in fits[kind]["records"]]}
        log(f"evaluate {kind} at equal steps")
        result[kind]["eval"] = evaluate(trainers[kind].ema.eval(), ae, judges, cfg, seed)

    # equal wall time: the faster model trains on until it has used the slower one's time
    fast, slow = sorted(fits, key=lambda k: fits[k]["seconds"])
    extra = fits[slow]["seconds"] - fits[fast]["seconds"]
    log(f"equal wall time: {fast} trains {extra:.0f} s more")
    more = fit_for(trainers[fast], extra)
    result["equal_wall_time"] = {"seconds": fits[slow]["seconds"], slow: {"steps": cfg["steps"]},
                                 fast: {"steps": more["steps"]}}
    for kind in (fast, slow):
        ev = result[kind]["eval"] if kind == slow else evaluate(trainers[kind].ema.eval(), ae, judges, cfg, seed)
        result["equal_wall_time"][kind]["best"] = ev["guidance_sweep"][ev["best_guidance"]]
        result["equal_wall_time"][kind]["best_guidance"] = ev["best_guidance"]

    mmdit_ema = copy.deepcopy(trainers["mmdit"].ema).eval()
    best = result["mmdit"]["eval"]["best_guidance"]
    log("crop and size conditioning")
    result["crop"] = crop_check(mmdit_ema, ae, cfg, best, seed)
    result["original_size"] = size_check(mmdit_ema, ae, cfg, best, seed)

    log(f"refiner: {cfg['refiner_steps']} steps on t < 0.3")
    refiner = build("mmdit", cfg, seed + 1000, t_max=0.3)
    refiner_trainer = trainer_for(refiner, data, dict(cfg, steps=cfg["refiner_steps"]), seed + 1000)
    fit(refiner_trainer, cfg["refiner_steps"])
    under_trained = fits["mmdit"]["snapshots"][cfg["steps"] // 5].eval()
    result["refiner"] = refiner_check(under_trained, refiner_trainer.ema.eval(), ae, judges, cfg, best, seed)
    result["refiner"]["base_steps"] = cfg["steps"] // 5

    if args.figures:
        guidance = {k: result[k]["eval"]["best_guidance"] for k in ("unet", "mmdit")}
        result["figures"] = save_grids({"unet": trainers["unet"].ema.eval(), "mmdit": mmdit_ema}, ae, cfg, guidance,
                                       seed, args.figures)
        result["figures"].append(plot_sweep(result, args.figures / "shapes_guidance_sweep.png"))
    result["seconds"] = time.time() - t0
    print(json.dumps(result, default=lambda o: o if not isinstance(o, float) or math.isfinite(o) else None))


if __name__ == "__main__":
    main()

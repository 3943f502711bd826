"""Video latent diffusion on moving captioned shapes: temporal layers on a frozen image UNet. Prints JSON.

Per seed, on one CPU thread (run seeds side by side as separate processes):

1. judges, the KL autoencoder and the text-to-image UNet of ``benchmarks/shapes_ldm.py``
   (rectified flow, three aspect buckets, ``steps`` steps);
2. a pool of 8-frame clips (:func:`generative.data.clips.sample_clips`, 32 px) with 20 % hard
   cuts, 20 % static clips and frame noise 0.05, curated by :func:`generative.curation.curate`;
   every frame encoded by the frozen autoencoder;
3. two text-to-video models (:class:`generative.video_unet.VideoUNet` on a copy of the frozen
   image UNet; its text encoder and size embedders frozen too; fps and motion bucket as video
   micro-conditioning) trained for ``video_steps`` steps, one on the uncurated pool, one on the
   clips curation kept;
4. an image-to-video model: the same, with the conditioning frame's noise-augmented latent
   stacked onto every frame (the image UNet gets 4 more input channels, zero-initialised, and
   trains with the temporal layers, as SVD fine-tunes its whole network), augmentation level as
   micro-conditioning;
5. a temporal decoder (:class:`generative.video_decoder.TemporalDecoder`) trained to decode
   latents of noisy clips (frame noise 0.05, encoded frame by frame) into the clean clips.

Evaluations (``flow_euler``, 20 steps, guidance ``guidance``; frames decoded by the image decoder):

* temporal consistency: the judge's (shape, colour, size) multiset of each frame against frame
  0's, for video samples, for independent image samples of the same captions, and for real clips
  (the judge's own ceiling);
* motion: speed tracked by :func:`generative.curation.clip_motion` against the requested
  ``SPEEDS[bucket] * stride`` (per motion bucket and fps), Spearman correlation of tracked speed
  with the bucket, the ratio of speeds at fps 4 and 8 (2 expected);
* cuts: the fraction of samples in which :func:`generative.curation.detect_cuts` finds a cut,
  for both text-to-video models;
* image-to-video: PSNR of decoded frame 0 against the conditioning frame;
* temporal decoder: flicker (:func:`generative.video_decoder.flicker`) on static clips and
  per-frame PSNR against the clean clip, image decoder vs temporal decoder.

    python benchmarks/video_ldm.py --seed 0 [--quick] [--figures docs/images] [--cache DIR]

``--quick`` runs every stage at a tiny budget (a smoke test, not numbers). A full seed takes
about two hours on one free core; ``--cache DIR`` saves each trained network (weights only, with
its training seconds) as it finishes, and a rerun with the same ``DIR`` loads them instead of
training again, so a killed run continues from its last finished stage.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).parent))
import shapes_ldm as S  # noqa: E402

from generative.autoencoder import psnr  # noqa: E402
from generative.conditioning import Conditioner, ScalarEmbedder, frame_guidance  # noqa: E402
from generative.curation import clip_motion, curate, detect_cuts  # noqa: E402
from generative.data.clips import SPEEDS, sample_clips  # noqa: E402
from generative.formulations import RectifiedFlow  # noqa: E402
from generative.latent_diffusion import LatentDiffusion  # noqa: E402
from generative.trainer import Trainer  # noqa: E402
from generative.video_decoder import TemporalDecoder, flicker  # noqa: E402
from generative.video_unet import VideoUNet, noise_augment, with_concat_channels  # noqa: E402

FULL = dict(S.FULL, frames=8, clips=4000, video_steps=3000, video_batch=8, i2v_steps=2000, decoder_steps=1000,
            video_eval_n=96, guidance=3.0, augmentation=0.02)
QUICK = dict(S.QUICK, frames=4, clips=48, video_steps=4, video_batch=2, i2v_steps=4, decoder_steps=4,
             video_eval_n=6, guidance=3.0, augmentation=0.02)
CLIP_NOISE = 0.05
VIDEO_KEYS = ("tokens", "original_size", "crop", "target_size", "fps", "motion_bucket")


def clip_conditions(clips: dict, size: int = 32) -> dict:
    """Conditions of clips for the video models: caption, full-size uncropped frames, fps, motion bucket."""
    n = len(clips["tokens"])
    full = torch.full((n, 2), float(size))
    return {"tokens": clips["tokens"], "original_size": full, "crop": torch.zeros(n, 2), "target_size": full,
            "fps": clips["fps"], "motion_bucket": clips["motion_bucket"].float()}


@torch.no_grad()
def encode_clips(ae, clips: torch.Tensor) -> torch.Tensor:
    """Scaled latents ``[N, T, 4, h, w]`` of clips ``[N, T, 3, H, W]``, frame by frame."""
    n, t = clips.shape[:2]
    z = torch.cat([ae.to_latent(part) for part in clips.flatten(0, 1).split(512)])
    return z.reshape(n, t, *z.shape[1:])


@torch.no_grad()
def decode_clips(ae, z: torch.Tensor) -> torch.Tensor:
    n, t = z.shape[:2]
    frames = ae.from_latent(z.flatten(0, 1)).clamp(-1, 1)
    return frames.reshape(n, t, *frames.shape[1:])


def video_model(image: LatentDiffusion, cfg: dict, seed: int, concat: bool = False) -> LatentDiffusion:
    """A text-to-video (or, with ``concat``, image-to-video) model on a frozen copy of ``image``."""
    torch.manual_seed(seed)
    s = cfg["scalar_dim"]
    embedders = [copy.deepcopy(e).requires_grad_(False) for e in image.conditioner.embedders]
    extra = [ScalarEmbedder("fps", s), ScalarEmbedder("motion_bucket", s)]
    net = copy.deepcopy(image.model)
    if concat:
        extra.append(ScalarEmbedder("augmentation", s))
        net = with_concat_channels(net, 4)
    video = VideoUNet(net, blend="learned", heads=cfg["unet"]["heads"], video_vector_dim=len(extra) * s)
    if concat:
        video.image.requires_grad_(True)  # the new input channels must learn, and SVD trains the whole network
    return LatentDiffusion(video, Conditioner(embedders + extra), RectifiedFlow())


def video_trainer(model: LatentDiffusion, data: dict, cfg: dict, seed: int, steps: int, extra=None) -> Trainer:
    """Trains ``model`` on clip latents ``data`` (conditions + ``latent`` ``[N, T, 4, h, w]``); ``extra(batch, g)``
    adds conditions (image-to-video: the augmented frame 0)."""
    def batch_fn(step, generator):
        index = torch.randint(len(data["latent"]), (cfg["video_batch"],), generator=generator)
        batch = {key: value[index] for key, value in data.items()}
        return batch if extra is None else extra(batch, generator)

    return Trainer(model, lambda m, batch, g: m.loss(batch, g), batch_fn, lr=1e-3, ema_decay=0.999, seed=seed,
                   log_every=max(1, steps // 20))


def augment_first_frame(cfg: dict):
    def extra(batch, generator):
        n = len(batch["latent"])
        level = torch.full((n,), cfg["augmentation"])
        return dict(batch, augmentation=level, concat=noise_augment(batch["latent"][:, 0], level, generator))
    return extra


@torch.no_grad()
def sample_videos(model: LatentDiffusion, batch: dict, cfg: dict, seed: int, guidance) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return model.sample(batch, (cfg["frames"], 4, 8, 8), guidance=guidance, solver="flow_euler", steps=20, generator=g)


def attribute_sets(judge, frames: torch.Tensor) -> list:
    """Per image: the sorted (shape, colour, size) triples the judge sees (quadrants ignored: objects move)."""
    p = judge.predict(frames)
    return [sorted((s, c, z) for s, c, z in zip(*row) if s)
            for row in zip(p["shape"].tolist(), p["colour"].tolist(), p["size"].tolist())]


def consistency(judge, clips: torch.Tensor) -> float:
    """Fraction of frames 1..T-1 whose attribute multiset equals frame 0's, which must not be empty
    (a clip the judge sees nothing in does not count as consistent)."""
    n, t = clips.shape[:2]
    sets = attribute_sets(judge, clips.flatten(0, 1))
    same = [bool(sets[i * t]) and sets[i * t + k] == sets[i * t] for i in range(n) for k in range(1, t)]
    return sum(same) / len(same)


def motion_report(clips: torch.Tensor, prompts: dict) -> dict:
    speed = clip_motion(clips)
    wanted = torch.tensor(SPEEDS)[prompts["motion_bucket"]] * prompts["stride"]
    error = (speed - wanted).abs()
    out = {"speed_error_mean": error.mean().item(), "within_half_pixel": (error < 0.5).float().mean().item(),
           "by_bucket_and_stride": {}}
    for stride in prompts["stride"].unique().tolist():
        at = prompts["stride"] == stride
        rho = spearmanr(prompts["motion_bucket"][at].numpy(), speed[at].numpy()).statistic
        out[f"spearman_bucket_stride{stride}"] = float(rho)
        for bucket in range(len(SPEEDS)):
            cell = at & (prompts["motion_bucket"] == bucket)
            if cell.any():
                out["by_bucket_and_stride"][f"{bucket}/{stride}"] = {"requested": SPEEDS[bucket] * stride,
                                                                     "tracked": speed[cell].mean().item()}
    slow, fast = speed[prompts["stride"] == 1].mean(), speed[prompts["stride"] == 2].mean()
    out["speed_ratio_fps4_over_fps8"] = (fast / slow).item()
    return out


def cached(cache: Path | None, name: str, modules: dict, train: Callable[[], float]) -> float:
    """Training seconds of ``modules`` (name -> module): ``train()`` trains them in place, unless
    ``cache/name.pt`` holds their weights from an earlier run, which are loaded instead."""
    path = None if cache is None else cache / f"{name}.pt"
    if path is not None and path.is_file():
        saved = torch.load(path, weights_only=True)
        for key, module in modules.items():
            module.load_state_dict(saved["weights"][key])
        S.log(f"{name}: loaded from {path}")
        return saved["seconds"]
    seconds = train()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save({"weights": {key: m.state_dict() for key, m in modules.items()}, "seconds": seconds}, tmp)
        os.replace(tmp, path)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="every stage at a tiny budget (smoke test)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--figures", help="folder for GIF and MP4 grids of samples")
    parser.add_argument("--cache", type=Path, help="folder for the trained networks of each stage (resume a killed run)")
    args = parser.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    torch.set_num_threads(args.threads)
    seed, t = args.seed, cfg["frames"]
    result = {"benchmark": "video_ldm", "seed": seed, "quick": args.quick, "config": {k: str(v) for k, v in cfg.items()},
              "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                          "torch": torch.__version__}}

    S.log("judges, autoencoder, image model")
    cache = args.cache
    if cache is not None and all((cache / f"{name}.pt").is_file() for name in ("judges", "autoencoder")):  # built untrained, then loaded
        judges = S.train_judges(dict(cfg, judge_steps=1), seed)
        ae, _ = S.train_first_stage(dict(cfg, ae_steps=1), seed)
    else:
        judges = S.train_judges(cfg, seed)
        ae, _ = S.train_first_stage(cfg, seed)
    cached(cache, "judges", {str(side): judge for side, judge in judges.items()}, lambda: 0.0)
    cached(cache, "autoencoder", {"ae": ae}, lambda: 0.0)
    judge = judges[32]
    image = S.build("unet", cfg, seed)
    result["image_train_seconds"] = cached(cache, "image_unet", {"model": image}, lambda: S.fit(
        S.trainer_for(image, S.latent_set(ae, cfg, seed), cfg, seed), cfg["steps"])["seconds"])
    image.eval().requires_grad_(False)

    S.log(f"clips: {cfg['clips']} x {t} frames, curated")
    pool = sample_clips(cfg["clips"], t, 32, 32, cut_fraction=0.2, static_fraction=0.2, noise=CLIP_NOISE,
                        generator=200_000 + seed)
    kept = curate(pool["clip"])["keep"]
    result["curation"] = {"pool": len(kept), "kept": int(kept.sum()), "true_clean": int(((pool["cut_frame"] == 0)
                                                                                          & ~pool["static"]).sum())}
    data = clip_conditions(pool) | {"latent": encode_clips(ae, pool["clip"])}
    curated = {key: value[kept] for key, value in data.items()}

    models = {}
    for name, part in (("uncurated", data), ("curated", curated)):
        S.log(f"video model on {name} clips: {cfg['video_steps']} steps")
        model = video_model(image, cfg, seed)
        result[f"{name}_train_seconds"] = cached(cache, f"video_{name}", {"model": model}, lambda: S.fit(
            video_trainer(model, part, cfg, seed, cfg["video_steps"]), cfg["video_steps"])["seconds"])
        models[name] = model.eval()
    result["temporal_parameters"] = sum(p.numel() for p in models["curated"].model.temporal_parameters())

    S.log("evaluation")
    n = cfg["video_eval_n"]
    real = sample_clips(n, t, 32, 32, p_two=0.5, generator=300_000 + seed)
    prompts = clip_conditions(real)
    samples = {name: decode_clips(ae, sample_videos(m, prompts, cfg, seed, cfg["guidance"])) for name, m in models.items()}
    independent = torch.stack([S.generate(image, ae, prompts, cfg["guidance"], seed + 1000 * k) for k in range(t)], 1)
    result["consistency"] = {"video_curated": consistency(judge, samples["curated"]),
                             "video_uncurated": consistency(judge, samples["uncurated"]),
                             "independent_image_samples": consistency(judge, independent),
                             "real_clips": consistency(judge, real["clip"])}
    result["frame0_adherence"] = S.prompt_adherence(judge, samples["curated"][:, 0], real)
    result["motion"] = motion_report(samples["curated"], real)
    result["motion_real_clips"] = motion_report(real["clip"], real)
    result["cuts_in_samples"] = {name: detect_cuts(clips).any(1).float().mean().item() for name, clips in samples.items()}
    S.log(json.dumps({k: result[k] for k in ("consistency", "cuts_in_samples")}))

    S.log(f"image-to-video: {cfg['i2v_steps']} steps")
    i2v = video_model(image, cfg, seed, concat=True)
    extra = augment_first_frame(cfg)
    result["i2v_train_seconds"] = cached(cache, "image_to_video", {"model": i2v}, lambda: S.fit(
        video_trainer(i2v, curated, cfg, seed, cfg["i2v_steps"], extra), cfg["i2v_steps"])["seconds"])
    first = encode_clips(ae, real["clip"][:, :1])[:, 0]
    level = torch.full((n,), cfg["augmentation"])
    i2v_prompts = dict(prompts, augmentation=level, concat=noise_augment(first, level, torch.Generator().manual_seed(seed)))
    i2v_clips = decode_clips(ae, sample_videos(i2v.eval(), i2v_prompts, cfg, seed, frame_guidance(t, 1.0, cfg["guidance"])))
    result["image_to_video"] = {"frame0_psnr_db": psnr(i2v_clips[:, 0], real["clip"][:, 0]).mean().item(),
                                "last_frame_psnr_db": psnr(i2v_clips[:, -1], real["clip"][:, -1]).mean().item(),
                                "consistency": consistency(judge, i2v_clips)}

    S.log(f"temporal decoder: {cfg['decoder_steps']} steps")
    result["temporal_decoder"] = temporal_decoder_check(ae, cfg, seed, cache)
    if args.figures:
        write_gifs(Path(args.figures), {"curated": samples["curated"], "uncurated": samples["uncurated"],
                                        "image_to_video": i2v_clips, "real": real["clip"]})
    print(json.dumps(result, indent=1))


def temporal_decoder_check(ae, cfg: dict, seed: int, cache: Path | None = None) -> dict:
    decoder = TemporalDecoder(copy.deepcopy(ae), groups=2)
    train = sample_clips(cfg["clips"] // 2, cfg["frames"], 32, 32, static_fraction=0.5, generator=400_000 + seed)
    noisy = train["clip"] + CLIP_NOISE * torch.randn(train["clip"].shape, generator=torch.Generator().manual_seed(seed))
    data = {"latent": encode_clips(ae, noisy), "clean": train["clip"]}

    def batch_fn(step, generator):
        index = torch.randint(len(data["latent"]), (cfg["video_batch"],), generator=generator)
        return {key: value[index] for key, value in data.items()}

    def loss_fn(model, batch, generator):
        return (model.from_latent(batch["latent"]) - batch["clean"]).pow(2).flatten(1).mean(1)

    trainer = Trainer(decoder, loss_fn, batch_fn, lr=1e-3, ema_decay=0.0, seed=seed,
                      log_every=max(1, cfg["decoder_steps"] // 10))
    seconds = cached(cache, "temporal_decoder", {"model": trainer.model},
                     lambda: S.fit(trainer, cfg["decoder_steps"])["seconds"])
    test = sample_clips(cfg["video_eval_n"], cfg["frames"], 32, 32, static_fraction=1.0, generator=500_000 + seed)
    noisy = test["clip"] + CLIP_NOISE * torch.randn(test["clip"].shape, generator=torch.Generator().manual_seed(seed + 1))
    z = encode_clips(ae, noisy)
    with torch.no_grad():
        per_frame = decode_clips(ae, z)
        temporal = trainer.model.from_latent(z).clamp(-1, 1)
    clean = test["clip"].flatten(0, 1)
    out = {"train_seconds": seconds}
    for name, clips in (("image_decoder", per_frame), ("temporal_decoder", temporal)):
        out[name] = {"flicker": flicker(clips).mean().item(), "psnr_db": psnr(clips.flatten(0, 1), clean).mean().item()}
    out["flicker_reduction"] = 1 - out["temporal_decoder"]["flicker"] / out["image_decoder"]["flicker"]
    out["psnr_change_db"] = out["temporal_decoder"]["psnr_db"] - out["image_decoder"]["psnr_db"]
    return out


def write_gifs(folder: Path, grids: dict, rows: int = 4, cols: int = 4) -> None:
    """One looping GIF and one MP4 (4 frames per second) per entry: a ``rows x cols`` grid of
    clips, 4x upscaled, written by :func:`cryodiff.movies.write_movie`."""
    from cryodiff.movies import write_movie

    folder.mkdir(parents=True, exist_ok=True)
    for name, clips in grids.items():
        clips = clips[: rows * cols]
        n, t, _, h, w = clips.shape
        frames = []
        for k in range(t):
            grid = torch.ones(3, rows * (h + 2), cols * (w + 2))
            for i in range(n):
                r, c = divmod(i, cols)
                grid[:, r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = (clips[i, k] + 1) / 2
            grid = grid.repeat_interleave(4, 1).repeat_interleave(4, 2)
            frames.append((grid.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy())
        for suffix in (".gif", ".mp4"):
            write_movie(folder / f"video_{name}{suffix}", frames, fps=4.0)

if __name__ == "__main__":
    main()

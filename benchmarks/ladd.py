"""LADD: an MMDiT text-to-image teacher distilled into a 1-4 step student on captioned shapes. Printed as JSON.

The teacher, its judges and its autoencoder are made as in ``benchmarks/shapes_ldm.py`` (the
MMDiT, rectified flow, all three aspect buckets, ``--teacher-steps`` steps). Its "real" data
for LADD are ``--cache`` of its own 32x32 samples (captions of the training split, Euler with
40 steps at guidance ``--guidance``). The student (a copy of the teacher) trains
``--ladd-steps`` steps at ``--student-steps`` steps against heads on the teacher's blocks
(``generative.ladd``; re-noising logit-normal with mean 1, non-saturating losses), after
``--warmup-steps`` steps of guidance distillation onto the teacher's guided velocity (0: none).

Reported for the teacher at 40 and at 4 Euler steps (guided) the student at 1, 2 and 4
steps (and the warm-started student at 4 steps before the adversarial phase), on ``eval_n`` captions of the training split: per-attribute judge accuracy, Frechet
distance in the judge's features (and over the real-vs-real floor) and the wall time per
sample (network calls included, decoding excluded).

    python benchmarks/ladd.py --seed 0 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import shapes_ldm as S  # noqa: E402

from generative.ladd import LADD, cache_teacher_samples, guidance_trainer, ladd_trainer, student_sample  # noqa: E402

FULL = dict(S.FULL, steps=4000, cache=5000, ladd_steps=2000, warmup_steps=1000)
QUICK = dict(S.QUICK, steps=30, cache=64, ladd_steps=10, warmup_steps=10)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def evaluate(name, make_latents, ae, judges, batch, real, floor, n) -> dict:
    z, seconds = timed(make_latents)
    images = ae.from_latent(z).clamp(-1, 1)
    out = S.score(judges, images, batch, real, floor)
    out["seconds_per_sample"] = seconds / n
    S.log(f"{name}: {json.dumps({k: round(v, 4) for k, v in out.items()})}")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="every stage at a tiny budget (smoke test)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--guidance", type=float, default=3.0, help="the teacher's guidance scale")
    parser.add_argument("--student-steps", type=int, default=4, help="the student's steps in training")
    parser.add_argument("--lr", type=float, default=1e-4, help="student learning rate")
    parser.add_argument("--discriminator-lr", type=float, default=3e-4)
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="guidance-distillation steps before LADD (default 1000; 0: start from the unguided teacher)")
    parser.add_argument("--warmup-lr", type=float, default=1e-4, help="learning rate of the guidance distillation")
    parser.add_argument("--renoise-mean", type=float, default=1.0,
                        help="mean of the logit-normal re-noising time (above 0: biased to high noise)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = dict(QUICK if args.quick else FULL)
    if args.warmup_steps is not None:
        cfg["warmup_steps"] = args.warmup_steps
    seed, t0 = args.seed, time.time()
    result = {"seed": seed, "config": {k: v for k, v in cfg.items()}, "args": vars(args), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}

    S.log("judges and autoencoder")
    judges = S.train_judges(cfg, seed)
    ae, _ = S.train_first_stage(cfg, seed)
    data = S.latent_set(ae, cfg, seed)
    teacher = S.build("mmdit", cfg, seed)
    trainer = S.trainer_for(teacher, data, cfg, seed)
    S.log(f"teacher: {S.parameters(teacher)} parameters, {cfg['steps']} steps")
    result["teacher_train_seconds"] = S.fit(trainer, cfg["steps"])["seconds"]
    teacher = trainer.ema.eval()

    shape = (4, 8, 8)
    S.log(f"cache: {cfg['cache']} teacher samples at 40 steps")
    prompts = S.prompts(cfg["cache"], 32, 32, "train", 120_000 + seed)
    batches = [{k: v[i:i + 250] for k, v in S.conditions(prompts).items()} for i in range(0, cfg["cache"], 250)]
    cache, result["cache_seconds"] = timed(lambda: cache_teacher_samples(teacher, batches, shape, steps=40,
                                                                        guidance=args.guidance, seed=seed))

    ladd = LADD(teacher, feature_blocks=list(range(len(teacher.model.blocks))), steps=args.student_steps,
                renoise_mean=args.renoise_mean)

    def batch_fn(step, g):
        i = torch.randint(len(cache["latent"]), (cfg["batch"],), generator=g)
        return {k: v[i] for k, v in cache.items()}

    if cfg["warmup_steps"]:
        S.log(f"guidance distillation: {cfg['warmup_steps']} steps at guidance {args.guidance}")
        warm = guidance_trainer(ladd, batch_fn, args.guidance, lr=args.warmup_lr, ema_decay=0.99, seed=seed,
                                log_every=max(1, cfg["warmup_steps"] // 10))
        result["warmup_log"], result["warmup_seconds"] = timed(lambda: warm.fit(cfg["warmup_steps"]))
        ladd.student.load_state_dict(warm.ema.state_dict())
        warm_student = copy.deepcopy(ladd.student).eval()

    student_trainer = ladd_trainer(ladd, batch_fn, lr=args.lr, discriminator_lr=args.discriminator_lr, ema_decay=0.99,
                                   seed=seed, log_every=max(1, cfg["ladd_steps"] // 20))
    S.log(f"LADD: {cfg['ladd_steps']} steps")
    records, result["ladd_train_seconds"] = timed(lambda: student_trainer.fit(cfg["ladd_steps"]))
    result["ladd_log"] = records
    student = student_trainer.ema.eval()

    n = cfg["eval_n"]
    real, floor = S.real_reference(judges, n, 32, 32, "train", seed)
    batch = S.prompts(n, 32, 32, "train", 130_000 + seed)
    cond = S.conditions(batch)
    result["frechet_floor"] = floor

    def teacher_latents(steps):
        return lambda: teacher.sample(cond, shape, guidance=args.guidance, solver="flow_euler", steps=steps,
                                      generator=torch.Generator().manual_seed(seed))

    def student_latents(steps, model=student):
        return lambda: student_sample(model, cond, shape, steps, generator=torch.Generator().manual_seed(seed))

    with torch.no_grad():
        result["teacher_40"] = evaluate("teacher 40 steps", teacher_latents(40), ae, judges, batch, real, floor, n)
        result["teacher_4"] = evaluate("teacher 4 steps", teacher_latents(4), ae, judges, batch, real, floor, n)
        for steps in (1, 2, 4) if cfg["warmup_steps"] else ():
            result[f"warm_student_{steps}"] = evaluate(
                f"warm-started student {steps} steps, before LADD", student_latents(steps, warm_student), ae, judges,
                batch, real, floor, n)
        for steps in (1, 2, 4):
            result[f"student_{steps}"] = evaluate(f"student {steps} steps", student_latents(steps), ae, judges, batch,
                                                  real, floor, n)
    s4, t40, t4 = result["student_4"], result["teacher_40"], result["teacher_4"]
    if cfg["warmup_steps"]:
        result["checks_warm_student_4"] = {"frechet_over_teacher40": result["warm_student_4"]["frechet"] / t40["frechet"],
                                           "frechet_over_teacher4": result["warm_student_4"]["frechet"] / t4["frechet"],
                                           "all_attributes_points_vs_teacher40": 100 * (result["warm_student_4"]["all"]
                                                                                        - t40["all"])}
    result["checks"] = {"frechet_student4_over_teacher40": s4["frechet"] / t40["frechet"],
                        "frechet_student4_over_teacher4": s4["frechet"] / t4["frechet"],
                        "all_attributes_points_vs_teacher40": 100 * (s4["all"] - t40["all"]),
                        "speedup_student4_vs_teacher40": t40["seconds_per_sample"] / s4["seconds_per_sample"]}
    result["seconds"] = time.time() - t0
    print(json.dumps(result))


if __name__ == "__main__":
    main()

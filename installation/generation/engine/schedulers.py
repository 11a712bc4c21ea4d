"""The denoising schedule, worked out once per (steps, strength) from a diffusers scheduler and
laid out as plain per-stage coefficients for the hot loop.

The loop writes every stage as the same few multiply-adds, whatever the scheduler:

    x_t      = a * x0 + b * eps                 (how a stage's latent is made from a clean one)
    model_in = c_in * x_t                       (Euler scales its input; LCM does not)
    x0_pred  = p * x_t + q * model_out          (epsilon or v prediction, both linear)
    denoised = c_skip * x_t + c_out * x0_pred   (LCM's boundary condition; Euler: 0 and 1)
    next x_t = a' * denoised + b' * eps'        (Euler: eps' is this stage's eps, deterministic;
                                                 LCM: eps' is fresh noise)

The values come from the scheduler object itself (its timesteps, sigmas, alphas and scalings),
so they match what diffusers' pipelines compute. Two families are supported: Euler (SD-Turbo,
SDXL-Turbo; any other scheduler is converted to Euler with trailing timesteps, as the Turbo
models were distilled with) and LCM (SD 1.5 with LCM-LoRA, LCM-distilled checkpoints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

EULER = "euler"
LCM = "lcm"
COLUMNS = ("t", "c_in", "p", "q", "c_skip", "c_out", "a", "b")
# Below this img2img strength nothing visible would change: the generators hand back the
# camera image instead of running the model.
MIN_STRENGTH = 0.01


class ScheduleError(ValueError):
    """A schedule that cannot be built (bad steps or strength, an unsupported prediction)."""


def img2img_steps(steps: int, strength: float) -> int:
    """num_inference_steps for diffusers img2img so that `steps` denoising steps actually run.

    diffusers runs int(num_inference_steps * strength) of them, so 1 step at strength 0.5
    needs num_inference_steps=2 (as the SD-Turbo docs do). The loop guards float rounding
    (e.g. 3 * 0.1 = 0.30000000000000004)."""
    if steps < 1:
        raise ValueError(f"steps: expected at least 1, got {steps}")
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength: expected a value in (0, 1], got {strength}")
    n = max(steps, math.ceil(steps / strength))
    while int(n * strength) < steps:
        n += 1
    return n


@dataclass(frozen=True)
class Stage:
    t: float
    c_in: float
    p: float
    q: float
    c_skip: float
    c_out: float
    a: float
    b: float

    def row(self) -> list[float]:
        return [getattr(self, c) for c in COLUMNS]


@dataclass(frozen=True)
class Schedule:
    """The stages one frame passes through, noisiest first."""

    kind: str  # EULER or LCM
    stages: tuple[Stage, ...]
    init_sigma: float  # txt2img: the starting latent is noise * init_sigma (diffusers' init_noise_sigma)

    @property
    def deterministic(self) -> bool:
        """Euler reuses a stage's own noise estimate for the next stage; LCM adds fresh noise."""
        return self.kind == EULER

    def __len__(self) -> int:
        return len(self.stages)

    def rows(self) -> list[list[float]]:
        return [s.row() for s in self.stages]


def scheduler_kind(scheduler: Any) -> str:
    return LCM if type(scheduler).__name__ == "LCMScheduler" else EULER


def prepare_scheduler(scheduler: Any, want: str = "auto") -> Any:
    """The scheduler the engine runs: LCM stays LCM; Euler stays Euler; anything else (PNDM,
    DDIM from an SD 1.5 folder) becomes Euler with trailing timesteps, or LCM when asked."""
    from diffusers import EulerDiscreteScheduler, LCMScheduler

    name = type(scheduler).__name__
    if want == LCM and name != "LCMScheduler":
        return LCMScheduler.from_config(scheduler.config)
    if want == EULER or (want == "auto" and name not in ("LCMScheduler", "EulerDiscreteScheduler")):
        if name == "EulerDiscreteScheduler":
            return scheduler
        return EulerDiscreteScheduler.from_config(scheduler.config, timestep_spacing="trailing")
    return scheduler


def _prediction(scheduler: Any) -> str:
    pred = scheduler.config.get("prediction_type", "epsilon")
    if pred not in ("epsilon", "v_prediction", "sample"):
        raise ScheduleError(f"scheduler prediction_type {pred!r} is not supported (epsilon, v_prediction, sample)")
    return pred


def build_schedule(scheduler: Any, steps: int, strength: float | None) -> Schedule:
    """Stages for `steps` denoising steps; `strength` None is txt2img (from pure noise), a value
    in (0, 1] is img2img, picking the same timesteps as diffusers' img2img pipelines.

    Mutates `scheduler` (set_timesteps): pass a private copy, not the pipeline's."""
    if steps < 1:
        raise ScheduleError(f"steps: expected at least 1, got {steps}")
    n = steps if strength is None else img2img_steps(steps, strength)
    scheduler.set_timesteps(n, device="cpu")
    start = n - steps  # diffusers' get_timesteps: t_start = n - int(n * strength)
    kind = scheduler_kind(scheduler)
    pred = _prediction(scheduler)
    timesteps = [float(t) for t in scheduler.timesteps[start:]]
    stages: list[Stage] = []
    if kind == EULER:
        if pred == "sample":
            raise ScheduleError("Euler with prediction_type 'sample' is not supported")
        sigmas = [float(s) for s in scheduler.sigmas[start : start + steps]]
        for t, sigma in zip(timesteps, sigmas):
            c_in = 1.0 / math.sqrt(sigma * sigma + 1.0)
            if pred == "epsilon":
                p, q = 1.0, -sigma
            else:  # v_prediction, as EulerDiscreteScheduler.step writes it
                p, q = 1.0 / (sigma * sigma + 1.0), -sigma * c_in
            stages.append(Stage(t, c_in, p, q, 0.0, 1.0, 1.0, sigma))
        init_sigma = float(scheduler.init_noise_sigma)
    else:
        alphas = scheduler.alphas_cumprod
        for t in timesteps:
            alpha = float(alphas[int(t)])
            a, b = math.sqrt(alpha), math.sqrt(1.0 - alpha)
            if pred == "epsilon":
                p, q = 1.0 / a, -b / a
            elif pred == "v_prediction":
                p, q = a, -b
            else:
                p, q = 0.0, 1.0
            c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(int(t))
            stages.append(Stage(t, 1.0, p, q, float(c_skip), float(c_out), a, b))
        init_sigma = float(scheduler.init_noise_sigma)
    return Schedule(kind=kind, stages=tuple(stages), init_sigma=init_sigma)

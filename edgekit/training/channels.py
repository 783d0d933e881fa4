"""`edgekit compress --method channels`: NetAdapt (Yang et al., ECCV 2018) for Keras 3. Whole channels are
removed, step by step, each step chosen by latency measured on the target device, so the dense kernels
shrink and the model runs faster there (unstructured zeros, --method prune, never do).

Latency table: NetAdapt measures each layer alone at every width. Here each prunable group (a layer's
filters, or channels tied by residual adds) is measured once inside the whole model at half its width, on
the device, in fresh processes (edgekit.training.latency); its saving per removed channel is taken as linear
from there. One conversion per group instead of one per (layer, width), and the interactions between
layers that a per-layer table misses are in the figure. Each step's chosen model is then measured whole, so
the loop stops on measured latency, not on the table's prediction.

Each step: a latency budget of (start - target) / STEPS; for every group, the fewest channels whose
predicted saving meets it (the lowest-norm ones, BatchNorm-scaled); the CANDIDATES least destructive of
these are fine-tuned briefly on the training split; the one with the best held-out top-1 is kept. Then the
whole model fine-tunes with the training settings `train` uses.
"""

import math
from dataclasses import dataclass

from device_bench.errors import EdgekitError

STEPS = 4  # the latency gap is closed in about this many steps
MAX_STEPS = 4 * STEPS  # a target the table misjudges still ends
CANDIDATES = 6  # groups fine-tuned per step (NetAdapt tries every layer; this bounds the cost)
SHORT_BATCHES = 20  # training batches of each candidate's short fine-tune


@dataclass
class ChannelGoal:
    """What --method channels aims at and where it measures."""
    target_latency_ms: float = None
    speedup: float = None
    target: str = None  # device: None (here), local, ssh://..., adb://...
    precision: str = "int8"
    max_top1_drop: float = None  # points of held-out top-1
    keep: tuple = ()

    def validate(self):
        """Every option checked before anything loads; returns self."""
        from device_bench.options import PRECISIONS
        if (self.target_latency_ms is None) == (self.speedup is None):
            raise EdgekitError("--method channels needs one of --target-latency-ms or --speedup")
        if self.speedup is not None and not self.speedup > 1:
            raise EdgekitError(f"--speedup must be greater than 1, got {self.speedup:g}")
        if self.target_latency_ms is not None and not self.target_latency_ms > 0:
            raise EdgekitError(f"--target-latency-ms must be positive, got {self.target_latency_ms:g}")
        if self.precision not in PRECISIONS:
            raise EdgekitError(f"--precision takes {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.max_top1_drop is not None and not self.max_top1_drop >= 0:
            raise EdgekitError(f"--max-top1-drop must be >= 0 (points), got {self.max_top1_drop:g}")
        return self

    def given(self):
        """Whether any channels option was set (they apply to --method channels only)."""
        return self.target_latency_ms is not None or self.speedup is not None or self.max_top1_drop is not None \
            or bool(self.keep) or self.target is not None

    def label(self):
        """The variant's name in reports: pruned-channels-1.6x or pruned-channels-2.5ms."""
        return f"pruned-channels-{self.speedup:g}x" if self.speedup else f"pruned-channels-{self.target_latency_ms:g}ms"


@dataclass
class Start:
    """What the pre-training check measured: the start, the floor and the target latency."""
    plan: object
    meter: object
    base_ms: float
    floor_ms: float
    target_ms: float


def check_reachable(model, goal, progress, ssh_config=None):
    """Before any training: the model has prunable channels, and the target lies between the measured floor
    (every prunable group at one channel) and the measured start. Returns a Start."""
    from edgekit.training import surgery
    from edgekit.training.latency import LatencyMeter
    plan = surgery.analyze(model, goal.keep)
    groups = plan.prunable()
    if not groups:
        raise EdgekitError(f"{model.name}: no prunable channels (every Conv2D/Dense output reaches the output, "
                           f"the input, or a --keep layer)")
    meter = LatencyMeter(goal.target, goal.precision, ssh_config=ssh_config, progress=progress)
    floor = surgery.prune_channels(model, plan, surgery.keep_strongest(
        plan, surgery.importance(model, plan), {g.id: 1 for g in groups}))
    progress(f"channels: measuring {model.name} and its floor ({len(groups)} prunable groups at one channel) "
             f"at {goal.precision} on {meter.device['target']}")
    base_ms, floor_ms = meter.measure([model, floor])
    if base_ms is None:
        raise EdgekitError(f"{model.name}: its {goal.precision} build does not run on {meter.device['target']}")
    target_ms = goal.target_latency_ms if goal.target_latency_ms is not None else base_ms / goal.speedup
    where = f"{goal.precision} p50 on {meter.device['target']}"
    if base_ms <= target_ms:
        raise EdgekitError(f"{model.name} already meets the target: {where} is {base_ms:.3f} ms, target "
                           f"{target_ms:.3f} ms")
    if floor_ms is None:
        progress("channels: the floor (every group at one channel) does not run there; its check is skipped")
    elif floor_ms >= target_ms:
        raise EdgekitError(f"target {target_ms:.3f} ms is below the floor: with every prunable group at one channel, "
                           f"{where} is {floor_ms:.3f} ms (start {base_ms:.3f} ms)")
    progress(f"channels: start {base_ms:.3f} ms, floor {floor_ms or float('nan'):.3f} ms, target {target_ms:.3f} ms "
             f"({where})")
    return Start(plan, meter, base_ms, floor_ms, target_ms)


def latency_table(model, start, progress):
    """{group name: measured ms saved per removed channel}, each group at half width inside the whole model."""
    from edgekit.training import surgery
    plan = start.plan
    scores = surgery.importance(model, plan)
    groups = plan.prunable()
    halves = [surgery.prune_channels(model, plan, surgery.keep_strongest(plan, scores, {g.id: g.size // 2}))
              for g in groups]
    progress(f"channels: latency table, {len(groups)} groups at half width, measured on {start.meter.device['target']}")
    figures = start.meter.measure(halves)
    return {g.name: max(0.0, (start.base_ms - ms) / (g.size - g.size // 2)) if ms is not None else 0.0
            for g, ms in zip(groups, figures)}


def _short_tune(model, data, settings, seed):
    """A brief fine-tune on SHORT_BATCHES batches of the training split (NetAdapt's short-term fine-tune)."""
    import numpy as np
    from edgekit.tf_import import import_tf
    from edgekit.training.fit import Data, batchnorm_momentum, default_lr, fit, top1
    _, keras = import_tf()
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(data.x))[:SHORT_BATCHES * settings.batch_size]
    part = Data(data.x[pick], data.y[pick], data.xv[:1], data.yv[:1])
    keras.utils.set_random_seed(seed)
    with batchnorm_momentum(model, SHORT_BATCHES):
        fit(model, part, settings, lambda m: None, epochs=1, lr=settings.lr or default_lr(model), early_stop=False)
    return top1(model, data.xv, data.yv)


def _candidates(model, plan, table, budget):
    """[(group, channels now, channels after)] that meet ``budget`` by the table, least destructive first."""
    from edgekit.training import surgery
    now = surgery.channel_widths(model, plan)
    found = []
    for g in plan.prunable():
        per_channel = table.get(g.name, 0.0)
        if per_channel <= 0:
            continue
        remove = math.ceil(budget / per_channel)
        if remove < now[g.id]:
            found.append((g, now[g.id], now[g.id] - remove))
    return sorted(found, key=lambda c: (c[1] - c[2]) / c[1])[:CANDIDATES]


def _best_candidate(model, plan, found, data, settings, seed):
    """Each candidate pruned from ``model`` and briefly fine-tuned; (top-1, group, before, after, model) of
    the one with the best held-out top-1."""
    from edgekit.training import surgery
    scores = surgery.importance(model, plan)
    widths_now = surgery.channel_widths(model, plan)
    best = None
    for g, before, after in found:
        candidate = surgery.prune_channels(model, plan, surgery.keep_strongest(plan, scores, {**widths_now, g.id: after}))
        acc = _short_tune(candidate, data, settings, seed)
        if best is None or acc > best[0]:
            best = (acc, g, before, after, candidate)
    return best


def netadapt(model, data, settings, start, goal, progress, bar=False):
    """Prune ``model`` step by step until its measured latency meets the target; returns (model, details)."""
    from edgekit.training import surgery
    from edgekit.training.fit import batchnorm_momentum, default_lr, fit, top1, with_augmentation
    table = latency_table(model, start, progress)
    base_top1 = top1(model, data.xv, data.yv)
    gap = start.base_ms - start.target_ms
    current, current_ms, steps, stopped = model, start.base_ms, [], None
    progress(f"channels: held-out top-1 {base_top1:.2%} at the start")
    for step in range(1, MAX_STEPS + 1):
        if current_ms <= start.target_ms:
            break
        plan = surgery.analyze(current, goal.keep)
        budget, found = gap / STEPS, []
        for _ in range(4):  # no group can save the budget alone: try half of it
            found = _candidates(current, plan, table, budget)
            if found:
                break
            budget /= 2
        if not found:
            stopped = "no group can lose more channels"
            break
        acc, g, before, after, candidate = _best_candidate(current, plan, found, data, settings, settings.seed + step)
        if goal.max_top1_drop is not None and (base_top1 - acc) * 100 > goal.max_top1_drop:
            stopped = (f"--max-top1-drop {goal.max_top1_drop:g}: the best step ({g.name} {before} -> {after}) "
                       f"left held-out top-1 at {acc:.2%}, from {base_top1:.2%}")
            progress(f"channels: stopped early, {stopped}")
            break
        [measured] = start.meter.measure([candidate])
        if measured is None:
            stopped = f"the best step ({g.name} {before} -> {after}) does not run on {start.meter.device['target']}"
            break
        current, current_ms = candidate, measured
        steps.append({"step": step, "group": g.name, "before": before, "after": after, "p50_ms": current_ms,
                      "top1": acc, "candidates": len(found)})
        progress(f"channels step {step}: {g.name} {before} -> {after} channels, p50 {current_ms:.3f} ms, "
                 f"held-out top-1 {acc:.2%}")
    met = current_ms <= start.target_ms
    if not met and not stopped:
        stopped = f"{MAX_STEPS} steps"
    history = []
    if steps:
        progress(f"channels: fine-tuning the pruned model ({settings.epochs} epochs)")
        with batchnorm_momentum(current, -(-len(data.x) // settings.batch_size)):
            history = fit(with_augmentation(current, settings), data, settings, progress, epochs=settings.epochs,
                          lr=settings.lr or default_lr(current), bar=bar, phase="channels fine-tune: ")
    plan = surgery.analyze(current, goal.keep)
    widths = surgery.channel_widths(current, plan)
    return current, {
        "device": start.meter.device, "precision": goal.precision, "base_ms": start.base_ms,
        "floor_ms": start.floor_ms, "target_ms": start.target_ms, "final_ms": current_ms, "target_met": met,
        "stopped": stopped, "base_top1": base_top1, "top1": top1(current, data.xv, data.yv), "steps": steps,
        "history": history, "models_measured": start.meter.measured, "table_ms_per_channel": table,
        "groups": [{"group": g.name, "channels": start.plan.groups[g.id].size, "kept": widths[g.id]}
                   for g in plan.prunable()],
        "method": "NetAdapt: per-group latency table (half width, whole model, on the device), short fine-tune "
                  f"of {SHORT_BATCHES} batches per candidate, best held-out top-1 kept"}

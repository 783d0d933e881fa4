"""Magnitude pruning for Keras 3, without tensorflow-model-optimization.

Zhu & Gupta's polynomial schedule ("To prune, or not to prune", 2017): sparsity rises from 0 to the
target as s_t = s_f (1 - (1 - t / T)^3) over the first 70% of fine-tuning steps, masks recomputed a
few times per epoch from weight magnitudes; every batch re-applies the masks, so pruned weights stay
zero through fine-tuning. The saved model is an ordinary Keras model whose kernels hold zeros.

A .tflite does not shrink from zeros and XNNPACK runs no faster on unstructured sparsity; the gain
is the compressed (gzip) size, the figure Deep Compression and the TF pruning guide report. TFLite's
experimental sparse format is not offered: with int8 it takes ops out of XNNPACK.
"""

from device_bench.errors import EdgekitError
from edgekit.tf_import import import_tf

MIN_PRUNED_WEIGHTS = 1024  # smaller kernels (the first convolution, depthwise filters) stay dense
RAMP_FRACTION = 0.7  # sparsity reaches its target after this fraction of the fine-tuning steps
UPDATES_PER_EPOCH = 4


def check_sparsity(sparsity):
    """A target sparsity must lie strictly between 0 and 1."""
    if not isinstance(sparsity, (int, float)) or isinstance(sparsity, bool) or not 0 < sparsity < 1:
        raise EdgekitError(f"--sparsity must be between 0 and 1 (exclusive), e.g. 0.75; got {sparsity}")
    return float(sparsity)


def prunable(model):
    """[(layer, kernel variable)] that pruning thins: Conv2D and Dense kernels of at least 1024 weights,
    except the first weight layer (it sees the pixels) and the last (the classifier), which stay dense."""
    _, keras = import_tf()
    weighted = [l for l in model.layers if any(w.path.endswith("kernel") for w in l.weights)]
    out = []
    for layer in weighted[1:-1]:
        if type(layer) in (keras.layers.Conv2D, keras.layers.Dense):
            kernel = next(w for w in layer.weights if w.path.endswith("kernel"))
            if int(kernel.numpy().size) >= MIN_PRUNED_WEIGHTS:
                out.append((layer, kernel))
    return out


def polynomial_sparsity(step, end_step, target):
    """Zhu & Gupta's cubic ramp from 0 at step 0 to ``target`` at ``end_step``, then held."""
    if step >= end_step:
        return target
    return target * (1.0 - (1.0 - step / end_step) ** 3)


def magnitude_mask(values, sparsity):
    """A 0/1 mask that zeroes exactly round(sparsity * n) of the smallest-magnitude weights."""
    import numpy as np
    flat = np.abs(values).ravel()
    k = int(round(sparsity * flat.size))
    mask = np.ones(flat.size, np.float32)
    if k:
        mask[np.argpartition(flat, k - 1)[:k]] = 0.0
    return mask.reshape(values.shape)


def pruning_callback(targets, target, total_steps, steps_per_epoch):
    """A Keras callback that updates the masks on the schedule and re-applies them after every batch."""
    _, keras = import_tf()
    end_step = max(1, int(total_steps * RAMP_FRACTION))
    every = max(1, steps_per_epoch // UPDATES_PER_EPOCH)

    class _Pruner(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.step, self.masks = 0, None

        def update(self, sparsity):
            self.sparsity = sparsity
            self.masks = [magnitude_mask(kernel.numpy(), sparsity) for _, kernel in targets]
            self.apply()

        def apply(self):
            for (_, kernel), mask in zip(targets, self.masks):
                kernel.assign(kernel * mask)

        def on_train_batch_begin(self, batch, logs=None):
            if self.step % every == 0 or self.step == end_step:
                self.update(polynomial_sparsity(self.step, end_step, target))

        def on_train_batch_end(self, batch, logs=None):
            self.apply()
            self.step += 1

        def on_train_end(self, logs=None):
            self.update(target)  # the target holds whatever the step count was
    return _Pruner()


def zero_fractions(model, pruned_layers):
    """Per weight layer: weights, zeros and their fraction, and whether pruning thinned it."""
    import numpy as np
    names = {layer.name for layer in pruned_layers}
    rows = []
    for layer in model.layers:
        kernels = [w for w in layer.weights if w.path.endswith("kernel")]
        if kernels:
            w = kernels[0].numpy()
            zeros = int(np.sum(w == 0))
            rows.append({"layer": layer.name, "type": type(layer).__name__, "weights": int(w.size), "zeros": zeros,
                         "zero_fraction": zeros / w.size, "pruned": layer.name in names})
    return rows


def prune(model, data, settings, sparsity, progress, bar=False):
    """Prune ``model`` in place to ``sparsity`` while fine-tuning on ``data``; returns the details."""
    from edgekit.training.fit import batchnorm_momentum, default_lr, fit, steps_per_epoch, with_augmentation
    targets = prunable(model)
    if not targets:
        raise EdgekitError(f"{model.name}: no Conv2D or Dense kernel of at least {MIN_PRUNED_WEIGHTS} weights to prune")
    per_epoch = steps_per_epoch(data, settings)
    callback = pruning_callback(targets, sparsity, settings.epochs * per_epoch, per_epoch)
    progress(f"pruning {len(targets)} layers to {sparsity:.0%} over {settings.epochs} epochs")
    with batchnorm_momentum(model, per_epoch):
        # no early stopping: the best epoch could come before the target sparsity is reached
        history = fit(with_augmentation(model, settings), data, settings, progress, epochs=settings.epochs,
                      lr=settings.lr or default_lr(model), callbacks=[callback], early_stop=False, bar=bar,
                      phase="prune: ")
    layers = zero_fractions(model, [layer for layer, _ in targets])
    pruned = [r for r in layers if r["pruned"]]
    total = sum(r["weights"] for r in pruned)
    return {"sparsity": sparsity, "layers": layers, "history": history,
            "pruned_zero_fraction": sum(r["zeros"] for r in pruned) / total, "pruned_weights": total,
            "schedule": {"kind": "polynomial (cubic), Zhu & Gupta", "ramp_fraction": RAMP_FRACTION,
                         "mask_updates_per_epoch": UPDATES_PER_EPOCH}}

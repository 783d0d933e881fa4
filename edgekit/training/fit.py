"""`edgekit train`: a classifier for a folder of labelled images, from a zoo model or the user's own.

Transfer learning when pretrained weights are at hand (ImageNet's, a local weights file, or the
user's model with another head): the new head trains on a frozen backbone, then the whole network
fine-tunes at a tenth of the rate. Otherwise the network trains from scratch, and says so. The
saved .keras file carries its preprocessing and labels (edgekit.zoo.meta).
"""

import contextlib
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace

from device_bench.errors import EdgekitError, WeightsUnavailable
from device_bench.options import AUGMENTATIONS


@dataclass
class TrainSettings:
    """How to fit: the options `edgekit train` and `edgekit compress` share (their one definition: the
    CLI's options are generated from these fields and their help)."""
    epochs: int = field(default=20, metadata={"help": "Training epochs, at most (fine-tuning epochs for compress)."})
    fine_tune_epochs: int = field(default=10, metadata={
        "help": "Epochs with the whole network unfrozen, after the new head trained on a frozen backbone."})
    batch_size: int = field(default=32, metadata={"help": "Images per training step."})
    lr: float = field(default=None, metadata={
        "help": "Peak Adam learning rate (default 5e-3, or 2e-3 for networks without BatchNorm such as SqueezeNet; "
                "a tenth of it when fine-tuning a pretrained network)."})
    seed: int = field(default=0, metadata={"help": "Seed of the split, the initial weights and the shuffling."})
    val_split: float = field(default=0.2, metadata={"help": "Fraction of each class held out for validation."})
    augment: str = field(default="light", metadata={
        "help": "Augmentation: none, light (shift, rotate, zoom) or flip (light + horizontal mirror).",
        "choices": AUGMENTATIONS})
    patience: int = field(default=5, metadata={"help": "Stop after this many epochs without a better validation "
                                                       "accuracy (the best epoch is kept)."})

    def validate(self):
        """Raise EdgekitError naming the first option out of range; returns self."""
        for name in ("epochs", "batch_size", "patience"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise EdgekitError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)!r}")
        if not isinstance(self.fine_tune_epochs, int) or self.fine_tune_epochs < 0:
            raise EdgekitError(f"--fine-tune-epochs must be >= 0, got {self.fine_tune_epochs!r}")
        if self.lr is not None and not self.lr > 0:
            raise EdgekitError(f"--lr must be positive, got {self.lr}")
        if not 0 < self.val_split < 1:
            raise EdgekitError(f"--val-split must be between 0 and 1 (exclusive), got {self.val_split}")
        if self.augment not in AUGMENTATIONS:
            raise EdgekitError(f"--augment takes {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        return self


def train_settings(options, base=None):
    """TrainSettings from keyword options named as the CLI's (epochs, lr, seed, ...); unknown names fail."""
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise EdgekitError(f"unknown training option {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return replace(base or TrainSettings(), **{k: v for k, v in options.items() if v is not None}).validate()


@dataclass
class TrainResult:
    """What `edgekit train` made: the file, how it trained and how well it does on the held-out split."""
    path: str
    model: str
    labels: list
    preprocessing: dict
    pretrained: bool
    note: str
    counts: dict
    val_top1: float
    epochs_run: int
    history: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    seconds: float = None

    def to_dict(self):
        """A JSON-ready dict (`edgekit train --json`)."""
        return {"schema": 1, **asdict(self)}


@dataclass
class Data:
    """Training and held-out arrays in the model's own input scale."""
    x: object  # float32 [N, H, W, C]
    y: object  # int64 [N]
    xv: object
    yv: object


def load_data(listing, input_shape, prep, progress):
    """Pixels of a dataset listing, read with the device's own preprocessing."""
    from edgekit.training.data import load_arrays
    progress(f"reading {listing.counts()['train']} training and {listing.counts()['val']} held-out images "
             f"at {input_shape[0]}x{input_shape[1]}")
    x, y = load_arrays(listing.train, input_shape, prep, progress)
    xv, yv = load_arrays(listing.val, input_shape, prep, progress)
    return Data(x, y, xv, yv)


def ends_in_softmax(model):
    """Whether the model outputs probabilities (a final softmax) rather than logits."""
    last = model.layers[-1]
    if hasattr(last, "layers") and hasattr(last, "output_shape"):  # a wrapped model: its own last layer
        return ends_in_softmax(last)
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", "")
    return name == "softmax" or type(last).__name__ == "Softmax"


def augmentation_layers(augment, seed):
    """Keras preprocessing layers that perturb training images (inactive at inference)."""
    from edgekit.tf_import import import_tf
    _, keras = import_tf()
    if augment == "none":
        return []
    L = keras.layers
    layers = [L.RandomTranslation(0.1, 0.1, fill_mode="nearest", seed=seed),
              L.RandomRotation(0.05, fill_mode="nearest", seed=seed + 1),
              L.RandomZoom(0.1, fill_mode="nearest", seed=seed + 2)]
    return layers + ([L.RandomFlip("horizontal", seed=seed + 3)] if augment == "flip" else [])


def with_augmentation(model, settings):
    """The model behind the augmentation layers: what fit() trains; the model itself is what is saved."""
    from edgekit.tf_import import import_tf
    _, keras = import_tf()
    layers = augmentation_layers(settings.augment, settings.seed)
    if not layers:
        return model
    inputs = keras.Input(shape=model.input_shape[1:])
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, model(x), name=f"{model.name}_training")


def steps_per_epoch(data, settings):
    """Training steps in one epoch (the last batch may be short): schedules and BatchNorm momentum use it."""
    return -(-len(data.x) // settings.batch_size)


def epoch_line(progress, epochs, phase=""):
    """A Keras callback printing one summary line per epoch through ``progress`` (a factory: Keras is
    imported only when training starts)."""
    from edgekit.tf_import import import_tf
    _, keras = import_tf()

    class _Line(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            parts = [f"loss {logs['loss']:.4f}"] if "loss" in logs else []
            parts += [f"{k} {v:.2%}" for k, v in logs.items() if k.endswith("accuracy")]
            progress(f"{phase}epoch {epoch + 1}/{epochs}: {', '.join(parts)} "
                     f"({time.perf_counter() - self.t0:.1f} s)")
    return _Line()


@contextlib.contextmanager
def progress_bar(shown):
    """Let Keras's own progress bar through (on stderr, so stdout stays clean for --json) when ``shown``."""
    if not shown:
        yield 0
        return
    from edgekit.tf_import import import_tf
    _, keras = import_tf()
    was = keras.config.is_interactive_logging_enabled()
    keras.utils.enable_interactive_logging()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield 1
    finally:
        if not was:
            keras.utils.disable_interactive_logging()


@contextlib.contextmanager
def batchnorm_momentum(model, steps_per_epoch):
    """Let BatchNorm moving averages span about an epoch while training, then restore the configured
    momentum: Keras MobileNets use 0.999, which needs far more steps than a small dataset gives."""
    from edgekit.tf_import import import_tf
    _, keras = import_tf()
    target = max(0.5, 1.0 - 2.0 / max(1, steps_per_epoch))
    saved = [(l, l.momentum) for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    for layer, momentum in saved:
        layer.momentum = min(momentum, target)
    try:
        yield
    finally:
        for layer, momentum in saved:
            layer.momentum = momentum


def fit(trainable, data, settings, progress, *, epochs, lr, loss=None, metrics=("accuracy",), callbacks=(),
        early_stop=True, bar=False, phase=""):
    """Compile and fit ``trainable`` on ``data``; early stopping on validation accuracy keeps the best
    epoch. Returns the per-epoch history as a list of dicts."""
    from edgekit.tf_import import import_tf
    _, keras = import_tf()
    loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=not ends_in_softmax(trainable))
    per_epoch = steps_per_epoch(data, settings)
    # one epoch of linear warm-up (networks without BatchNorm, such as SqueezeNet, die without it), then cosine
    schedule = keras.optimizers.schedules.CosineDecay(lr / 100, decay_steps=max(1, (epochs - 1) * per_epoch),
                                                      alpha=0.05, warmup_target=lr, warmup_steps=per_epoch)
    trainable.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=list(metrics))
    cbs = [epoch_line(progress, epochs, phase), *callbacks]
    if early_stop:
        cbs.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=settings.patience,
                                                 restore_best_weights=True))
    with progress_bar(bar) as verbose:
        history = trainable.fit(data.x, data.y, batch_size=settings.batch_size, epochs=epochs, shuffle=True,
                                validation_data=(data.xv, data.yv), callbacks=cbs, verbose=verbose)
    keys = list(history.history)
    return [{"phase": phase.strip(": ") or "train", "epoch": i + 1,
             **{k: round(float(history.history[k][i]), 5) for k in keys}} for i in range(len(history.epoch))]


def top1(model, x, y, batch_size=64):
    """Top-1 accuracy of a Keras model on arrays."""
    import numpy as np
    return float(np.mean(model.predict(x, batch_size=batch_size, verbose=0).argmax(-1) == y))


def train_classifier(model, data, settings, progress, head=None, bar=False):
    """Fit ``model``: a new ``head`` first on a frozen backbone, then everything at a tenth of the rate;
    without a head, the whole network at once. Returns the history."""
    lr = settings.lr or default_lr(model)
    history = []
    with batchnorm_momentum(model, steps_per_epoch(data, settings)):
        if head:
            for layer in model.layers:
                layer.trainable = layer in head
            history += fit(with_augmentation(model, settings), data, settings, progress, epochs=settings.epochs,
                           lr=lr, bar=bar, phase="head: ")
            if settings.fine_tune_epochs:
                from edgekit.tf_import import import_tf
                _, keras = import_tf()
                for layer in model.layers:  # BatchNorm stays frozen, in inference mode, as Keras advises
                    layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
                history += fit(with_augmentation(model, settings), data, settings, progress,
                               epochs=settings.fine_tune_epochs, lr=lr / 10, bar=bar, phase="fine-tune: ")
            for layer in model.layers:
                layer.trainable = True
        else:
            history += fit(with_augmentation(model, settings), data, settings, progress, epochs=settings.epochs,
                           lr=lr, bar=bar)
    return history


def default_lr(model):
    """5e-3 for networks with BatchNorm; 2e-3 without (SqueezeNet's ReLUs die at higher rates)."""
    from edgekit.tf_import import import_tf
    _, keras = import_tf()
    has_bn = any(isinstance(l, keras.layers.BatchNormalization) for l in model.layers)
    return 5e-3 if has_bn else 2e-3


def with_new_head(base, classes):
    """``base`` cut after its last global pooling, with a new dropout + softmax head for ``classes``."""
    from edgekit.tf_import import import_tf
    _, keras = import_tf()
    pools = [l for l in base.layers if isinstance(l, (keras.layers.GlobalAveragePooling2D,
                                                        keras.layers.GlobalMaxPooling2D))]
    if not pools:
        raise EdgekitError(f"cannot find where the classifier head of {base.name!r} starts (no global pooling "
                           f"layer); train it with as many outputs as classes instead")
    x = pools[-1].output
    head = []
    if len(x.shape) == 4:
        head.append(keras.layers.Flatten(name="head_flatten"))
    head += [keras.layers.Dropout(0.2, name="head_dropout"),
             keras.layers.Dense(classes, activation="softmax", name="head_predictions")]
    for layer in head:
        x = layer(x)
    return keras.Model(base.inputs, x, name=base.name), head


def pretrained_zoo(name, spec, alpha, size, weights, note):
    """The 1000-class zoo model with pretrained weights, or None (training from scratch, said by ``note``)."""
    from edgekit.zoo import create_model
    if weights in (None, "none"):
        note(f"{name}: training from scratch (--weights none)")
        return None
    if weights == "imagenet":
        if not spec.has_imagenet_weights:
            note(f"{name}: Keras publishes no ImageNet weights for it; training from scratch")
            return None
        if size not in spec.imagenet_sizes:
            note(f"{name}: ImageNet weights exist at sizes {', '.join(map(str, spec.imagenet_sizes))}, not {size}; "
                 f"training from scratch")
            return None
    try:
        return create_model(name, alpha=alpha, size=size, classes=1000, weights=weights)
    except WeightsUnavailable as e:
        note(f"{name}: ImageNet weights could not be fetched ({e.reason[:120]}); training from scratch")
        return None


def build_for_training(source, labels, settings, note, *, alpha=None, size=None, weights="imagenet", mean=None,
                       std=None, preprocessing=None, crop=None, unsafe=False):
    """(model, preprocessing, head or None, facts for the saved metadata) for a zoo name or a model file."""
    from device_bench.images import make_preprocessing
    from edgekit.sources import is_model_path, load_source
    from edgekit.tf_import import import_tf
    _, keras = import_tf()
    classes = len(labels)
    if isinstance(source, (str, os.PathLike)) and not is_model_path(source):
        from edgekit.zoo import create_model, resolve_args
        if mean is not None or std is not None or preprocessing is not None:
            raise EdgekitError(f"{source} is a zoo model and knows its preprocessing; --mean/--std/--preprocessing "
                               f"are for your own model files")
        spec, alpha, size, _, _ = resolve_args(source, alpha, size, classes, "none")
        prep = make_preprocessing(spec.preprocessing, crop_fraction=1.0 if crop is None else crop)
        base = pretrained_zoo(source, spec, alpha, size, weights, note)
        keras.utils.set_random_seed(settings.seed)
        model, head = with_new_head(base, classes) if base is not None else (
            create_model(source, alpha=alpha, size=size, classes=classes), None)
        name = spec.variant_name(alpha, size)
        facts = {"family": spec.family, "name": name, "source": {"model": source, "alpha": alpha, "size": size,
                                                                 "weights": weights if base is not None else "none"}}
        return model, prep, head, facts
    if alpha is not None or weights not in (None, "none", "imagenet"):
        raise EdgekitError(f"--alpha and --weights apply to zoo models, not to the file {source}")
    model, info = load_source(source, size=size, mean=mean, std=std, preprocessing=preprocessing,
                              crop=crop, unsafe=unsafe)
    keras.utils.set_random_seed(settings.seed)
    head = None
    if model.output_shape[-1] != classes:
        note(f"{source}: {model.output_shape[-1]} outputs for {classes} classes; a new head trains on the frozen "
             f"network first")
        model, head = with_new_head(model, classes)
    facts = {"family": info.source.get("family") or "user model", "name": info.name,
             "source": {"file": info.source.get("path"), "sha256": info.source.get("sha256")}}
    return model, info.preprocessing, head, facts


def train_model(source, dataset, output, settings=None, *, alpha=None, size=None, weights="imagenet", mean=None,
                std=None, preprocessing=None, crop=None, unsafe=False, force=False, progress=None, bar=False):
    """Train ``source`` (zoo name or model file) on class folders and save a self-describing .keras file."""
    from edgekit.training.data import list_dataset
    from edgekit.zoo.meta import check_keras_output, save_model
    progress = progress or (lambda message: None)
    settings = (settings or TrainSettings()).validate()
    output = check_keras_output(output, force)
    listing = list_dataset(dataset, settings.val_split, settings.seed)  # a bad dataset fails before any work
    t0, notes = time.time(), []

    def note(text):
        notes.append(text)
        progress(text)

    model, prep, head, facts = build_for_training(source, listing.labels, settings, note, alpha=alpha, size=size,
                                                  weights=weights, mean=mean, std=std, preprocessing=preprocessing,
                                                  crop=crop, unsafe=unsafe)
    data = load_data(listing, model.input_shape[1:], prep, progress)
    history = train_classifier(model, data, settings, progress, head=head, bar=bar)
    val = top1(model, data.xv, data.yv)
    progress(f"held-out top-1 {val:.2%} on {len(data.yv)} images")
    training = {"dataset": listing.root, "seed": settings.seed, "val_split": settings.val_split,
                "counts": listing.counts(), "val_top1": val, "pretrained": head is not None or "file" in facts["source"]}
    save_model(model, output, dict(facts, preprocessing=prep, labels=listing.labels, training=training,
                                   compression=[]), force=force)
    progress(f"wrote {output}")
    return TrainResult(path=output, model=facts["name"], labels=listing.labels, preprocessing=prep,
                       pretrained=training["pretrained"], note="; ".join(notes), counts=listing.counts(),
                       val_top1=val, epochs_run=len(history), history=history, settings=asdict(settings),
                       seconds=round(time.time() - t0, 1))

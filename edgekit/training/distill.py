"""Knowledge distillation (Hinton et al., 2015): a student learns from a teacher's softened outputs.

Loss = w * CE(labels, student) + (1 - w) * T^2 * KL(softmax(teacher / T) || softmax(student / T)), on
logits. The KL term is an explicit keras.losses.KLDivergence on probabilities, so it is never negative:
Keras 3.15's own LogitsDistillation, with its default loss="kl_divergence", applies KL to raw logits
(its probability branch only fires for a KLDivergence instance) and its loss goes negative.

The teacher sees the student's (augmented) images, re-scaled to its own preprocessing and size.
"""

from device_bench.errors import EdgekitError
from edgekit.tf_import import import_tf

DEFAULT_TEMPERATURE = 4.0
DEFAULT_LABEL_WEIGHT = 0.1


def logits_model(model):
    """(a model giving ``model``'s logits, sharing its layers; a function that writes trained weights back)."""
    _, keras = import_tf()
    last = model.layers[-1]
    if type(last).__name__ == "Softmax" or (type(last).__name__ == "Activation"
                                           and getattr(last.activation, "__name__", "") == "softmax"):
        return keras.Model(model.inputs, last.input, name=f"{model.name}_logits"), lambda: None
    if getattr(getattr(last, "activation", None), "__name__", "") == "softmax":
        linear = type(last).from_config(dict(last.get_config(), activation="linear"))
        clone = keras.models.clone_model(model, clone_function=lambda l: linear if l is last else l)
        linear.set_weights(last.get_weights())
        return clone, lambda: last.set_weights(linear.get_weights())
    return model, lambda: None  # it already outputs logits


def distillation_loss(classes, temperature=DEFAULT_TEMPERATURE, label_weight=DEFAULT_LABEL_WEIGHT):
    """Hard-label cross-entropy plus T^2-scaled KL between softened teacher and student distributions, as a
    Keras loss (a factory: Keras is imported when it is made).

    Called on (labels, [student logits | teacher logits]) concatenated along the last axis."""
    _, keras = import_tf()
    ops = keras.ops

    class _Loss(keras.losses.Loss):
        def __init__(self):
            super().__init__(name="distillation")
            self.kl = keras.losses.KLDivergence(reduction=None)

        def call(self, y_true, y_pred):
            student, teacher = y_pred[:, :classes], ops.stop_gradient(y_pred[:, classes:])
            hard = keras.losses.sparse_categorical_crossentropy(y_true, student, from_logits=True)
            soft = self.kl(ops.softmax(teacher / temperature, axis=-1), ops.softmax(student / temperature, axis=-1))
            return label_weight * hard + (1.0 - label_weight) * temperature ** 2 * soft
    return _Loss()


def student_accuracy(classes):
    """Accuracy of the student part of [student | teacher] outputs, named so val_accuracy is monitored."""
    _, keras = import_tf()
    return keras.metrics.MeanMetricWrapper(
        lambda y, p: keras.metrics.sparse_categorical_accuracy(y, p[:, :classes]), name="accuracy")


def to_teacher_input(x, student_prep, teacher_prep, teacher_shape):
    """Student-scaled images re-expressed in the teacher's pixel scale, colour order and size."""
    import numpy as np
    _, keras = import_tf()
    ops = keras.ops
    channels = x.shape[-1]
    raw = x * np.asarray(student_prep["std"][:channels], np.float32) + np.asarray(student_prep["mean"][:channels], np.float32)
    if channels == 3 and student_prep.get("color_order", "RGB") != teacher_prep.get("color_order", "RGB"):
        raw = ops.flip(raw, axis=-1)
    t = (raw - np.asarray(teacher_prep["mean"][:channels], np.float32)) / np.asarray(teacher_prep["std"][:channels], np.float32)
    if tuple(teacher_shape[:2]) != tuple(x.shape[1:3]):
        t = keras.layers.Resizing(*teacher_shape[:2])(t)
    return t


def distillation_trainer(student, teacher, student_prep, teacher_prep, settings):
    """The training graph: augmentation, then [student logits | frozen teacher logits] (never saved)."""
    from edgekit.training.fit import augmentation_layers
    _, keras = import_tf()
    student_logits, write_back = logits_model(student)
    teacher_logits, _ = logits_model(teacher)
    # distinct names, so a teacher and a student of the same architecture can sit in one graph
    student_logits = keras.Model(student_logits.input, student_logits.output, name="student_logits")
    teacher_logits = keras.Model(teacher_logits.input, teacher_logits.output, name="teacher_logits")
    teacher.trainable = False
    inputs = keras.Input(shape=student.input_shape[1:])
    x = inputs
    for layer in augmentation_layers(settings.augment, settings.seed):
        x = layer(x)
    t = teacher_logits(to_teacher_input(x, student_prep, teacher_prep, teacher.input_shape[1:]), training=False)
    both = keras.layers.Concatenate(name="student_teacher")([student_logits(x), t])
    return keras.Model(inputs, both, name="distillation"), write_back


def check_pair(teacher, student, teacher_name, student_name):
    """Refuse, before training, a teacher and a student whose class counts differ."""
    t, s = int(teacher.output_shape[-1]), int(student.output_shape[-1])
    if t != s:
        raise EdgekitError(f"the teacher {teacher_name} has {t} classes but the student {student_name} has {s}; "
                           f"they must classify the same classes")


def distill(student, teacher, student_prep, teacher_prep, data, settings, progress, *, temperature=DEFAULT_TEMPERATURE,
            label_weight=DEFAULT_LABEL_WEIGHT, bar=False):
    """Train ``student`` in place from ``teacher`` on ``data`` (student-scaled). Returns the history."""
    from edgekit.training.fit import batchnorm_momentum, default_lr, fit, steps_per_epoch
    classes = int(student.output_shape[-1])
    trainer, write_back = distillation_trainer(student, teacher, student_prep, teacher_prep, settings)
    with batchnorm_momentum(student, steps_per_epoch(data, settings)):
        history = fit(trainer, data, settings, progress, epochs=settings.epochs,
                      lr=settings.lr or default_lr(student), loss=distillation_loss(classes, temperature, label_weight),
                      metrics=[student_accuracy(classes)], bar=bar, phase="distill: ")
    write_back()
    return history

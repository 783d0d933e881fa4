"""Real labelled images for accuracy tests: scikit-learn's handwritten digits (UCI optical digits).

Writes the 8x8 digits as 32x32 PNGs in class folders (a fixed, stratified split), and trains small
zoo networks on exactly the pixels the device pipeline produces from those PNGs.
"""

from pathlib import Path

import numpy as np

SIZE = 32
CLASSES = [str(i) for i in range(10)]


def write_digits(root):
    """root/train/<digit>/*.png and root/test/<digit>/*.png; returns (train_dir, test_dir)."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    idx = np.arange(len(digits.target))
    train, test = train_test_split(idx, test_size=0.2, random_state=0, stratify=digits.target)
    root = Path(root)
    for split, ids in (("train", train), ("test", test)):
        for i in ids:
            folder = root / split / CLASSES[digits.target[i]]
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (digits.images[i] * (255.0 / 16.0)).round().astype(np.uint8)
            Image.fromarray(pixels, "L").resize((SIZE, SIZE), Image.NEAREST).save(folder / f"{i:04d}.png")
    return root / "train", root / "test"


def load_split(folder, prep):
    from device_bench.images import list_images, load_input
    xs, ys = [], []
    for path in list_images([folder]):
        xs.append(load_input(path, [1, SIZE, SIZE, 3], prep)[0])
        ys.append(int(Path(path).parent.name))
    return np.stack(xs), np.array(ys)


def train(name, alpha, train_dir, prep, epochs, lr, seed=0):
    """Train a zoo network from scratch on the digits; returns the Keras model."""
    import keras
    from edgekit.zoo import create_model

    keras.utils.set_random_seed(seed)
    model = create_model(name, alpha=alpha, size=SIZE, classes=10)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9  # Keras's MobileNet default (0.999) needs far more steps than we train
    x, y = load_split(train_dir, prep)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    return model

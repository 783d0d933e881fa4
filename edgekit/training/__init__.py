"""Training and compression of Keras classifiers on labelled folders: fit, data, prune, distill, QAT, the compress chain."""

"""Rebuild the bundled digits data file of the generated project.

    pip install scikit-learn numpy
    python scripts/make_digits_npz.py

The UCI "Optical Recognition of Handwritten Digits" data (CC BY 4.0) happens to ship inside
scikit-learn, which is used here only as the source of the raw 8x8 images. The train/test split
is stratified and fixed by the seed below, so every generated project sees the same split.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

TARGET = Path(__file__).resolve().parents[1] / "{{cookiecutter.__project_dir}}" / "data" / "digits.npz"
TEST_PER_CLASS = 36  # 360 test images, 1437 for training and validation


def main() -> None:
    digits = load_digits()
    images = digits.images.astype(np.uint8)  # values 0..16
    labels = digits.target.astype(np.uint8)
    rng = np.random.default_rng(20261127)
    test_idx = np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), TEST_PER_CLASS, replace=False) for c in range(10)]
    )
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test_idx] = True
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        TARGET,
        x_train=images[~is_test],
        y_train=labels[~is_test],
        x_test=images[is_test],
        y_test=labels[is_test],
    )
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

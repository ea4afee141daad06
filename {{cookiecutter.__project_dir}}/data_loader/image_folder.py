"""Your own images, one sub-folder per class, read with torchvision's ImageFolder.

data/images/train/cat/001.jpg      training images; validation_split holds some out
data/images/train/dog/002.png
data/images/test/cat/101.jpg       held-out images for test.py (same class folders)
"""

import copy
import math
import os
import random
from pathlib import Path

from PIL import Image, ImageDraw
from torchvision import transforms
from torchvision.datasets import ImageFolder

from base import BaseDataLoader
from utils.errors import DataError

# Channel statistics of ImageNet: a sound default for photos; recompute them for unusual images.
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIZE = 64  # the side images are resized to when data_loader.args sets no image_size
SHAPE_NAMES = {3: "triangle", 4: "square", 5: "pentagon", 6: "hexagon", 7: "heptagon", 8: "octagon"}


class ImageFolderDataLoader(BaseDataLoader):
    """RGB images resized to `image_size`; the class names are the sub-folder names, sorted.

    Training images are randomly cropped and flipped (augmentation); validation and test images
    are only resized and centre-cropped, so their scores are comparable from epoch to epoch.
    """

    def __init__(
        self, data_dir, batch_size, image_size=SIZE, shuffle=True, validation_split=0.0, num_workers=0, training=True
    ):
        folder = Path(data_dir, "train" if training else "test")
        plain = _plain_transform(image_size)
        augmented = transforms.Compose(
            [
                transforms.RandomResizedCrop(image_size, scale=(0.7, 1.0)),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(MEAN, STD),
            ]
        )
        # The class list (and so the label numbers) comes from train/, so test/ may lack a class;
        # without train/ (evaluating elsewhere), test.py compares test/'s with the checkpoint's.
        train_folder = Path(data_dir, "train")
        classes = _class_folders(train_folder if training or train_folder.is_dir() else folder)
        dataset = ClassFolders(folder, classes, augmented if training else plain, allow_empty=not training)
        if len(dataset) == 0:
            raise DataError(
                f"no images in {folder.absolute()}: put them in its class sub-folders ({', '.join(classes)})"
            )
        # Validation reads the same images through the plain transform, without listing them again.
        valid = _with_transform(dataset, plain) if training else None
        super().__init__(dataset, batch_size, shuffle, validation_split, num_workers, valid_dataset=valid)
        self.classes = classes

    @staticmethod
    def read_input(path, image_size: int = SIZE):
        """One image file for predict.py, as test.py sees the test images: RGB, resized and
        centre-cropped to `image_size` (data_loader.args.image_size), normalised."""
        return _plain_transform(image_size)(_open_rgb(path))

    @staticmethod
    def write_sample(data_dir, num_classes: int = 3, per_class: int = 12, size: int = 24) -> None:
        """Draw small images of `num_classes` shapes into train/ and test/, for tests and smoke runs:
        a circle, then polygons of 3, 4, 5, ... corners."""
        rng = random.Random(0)
        for split, count in (("train", per_class), ("test", per_class // 2)):
            for label in range(num_classes):
                name = "circle" if label == 0 else SHAPE_NAMES.get(label + 2, f"polygon{label + 2}")
                folder = Path(data_dir, split, name)
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    image = Image.new("RGB", (size, size), tuple(rng.randrange(0, 80) for _ in range(3)))
                    x, y, r = rng.randrange(7, size - 7), rng.randrange(7, size - 7), rng.randrange(4, 7)
                    colour = tuple(rng.randrange(150, 256) for _ in range(3))
                    draw = ImageDraw.Draw(image)
                    if label == 0:
                        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
                    else:
                        draw.polygon(_corners(x, y, r, label + 2), fill=colour)
                    image.save(folder / f"{i:03d}.png")


class ClassFolders(ImageFolder):
    """torchvision's ImageFolder with the class list given (that of train/), one-line errors for
    a wrong layout, and a data error naming any image file that cannot be read."""

    def __init__(self, folder: Path, classes: list[str], transform, allow_empty: bool = False) -> None:
        self.known_classes = classes
        try:
            super().__init__(folder, transform, loader=_open_rgb, allow_empty=allow_empty)
        except FileNotFoundError as exc:
            raise DataError(
                f"no images in {folder.absolute()} ({str(exc).splitlines()[0].rstrip('.')}); "
                f"put them in one sub-folder per class, e.g. {folder / 'cat' / '001.jpg'}"
            ) from None

    def find_classes(self, directory):
        unknown = sorted(set(_class_folders(Path(directory))) - set(self.known_classes))
        if unknown:
            raise DataError(
                f"{Path(directory).absolute()} has class folders that train/ lacks: {', '.join(unknown)}; "
                "every class needs training images"
            )
        return self.known_classes, {name: index for index, name in enumerate(self.known_classes)}


def _plain_transform(image_size: int) -> transforms.Compose:
    """How validation, test and predicted images are read: no augmentation."""
    return transforms.Compose(
        [
            transforms.Resize(image_size),
            transforms.CenterCrop(image_size),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )


def _corners(x: float, y: float, r: float, n: int) -> list[tuple[float, float]]:
    """The corners of a regular polygon with `n` corners, centred on (x, y), one at the top."""
    return [(x + r * math.sin(2 * math.pi * k / n), y - r * math.cos(2 * math.pi * k / n)) for k in range(n)]


def _with_transform(dataset: ClassFolders, transform) -> ClassFolders:
    """The same images seen through another transform, without listing the folder again."""
    view = copy.copy(dataset)
    view.transform = transform
    return view


def _class_folders(folder: Path) -> list[str]:
    """The sorted names of the sub-folders of `folder`: one per class."""
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir()) if folder.is_dir() else []
    if not classes:
        raise DataError(
            f"no images in {folder.absolute()}: put them in one sub-folder per class, e.g. {folder / 'cat' / '001.jpg'}"
        )
    return classes


def _open_rgb(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:  # PIL.UnidentifiedImageError is an OSError
        raise DataError(f"cannot read image {path}: {exc}; replace or remove the file") from None

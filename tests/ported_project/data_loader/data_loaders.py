from torchvision import datasets, transforms

from base import BaseDataLoader


class DigitImagesLoader(BaseDataLoader):
    def __init__(self, data_dir, batch_size, shuffle=True, validation_split=0.0, num_workers=1, training=True):
        to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.13,), (0.31,))])
        self.data_dir = data_dir
        self.dataset = datasets.MNIST(self.data_dir, train=training, download=True, transform=to_tensor)
        super().__init__(self.dataset, batch_size, shuffle, validation_split, num_workers)

"""The torchvision-backed loaders of `archdal.data`, run offline on tiny files written in each dataset's real format.

Each writer below produces the on-disk layout torchvision reads (idx files for MNIST/FashionMNIST, pickled
batches for CIFAR10, MATLAB files for SVHN) from uint8 images held as N x C x H x W, so every test can compare
what `load_dataset` returns with exactly what was written. No test touches the network.
"""
import os
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets as tvd

from archdal.data import _TORCHVISION_FILES, DatasetFilesCorrupt, DatasetFilesMissing, DatasetSplits, load_dataset

N_TRAIN, N_TEST = 30, 20
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---------------------------------------------------------------- writers, one per on-disk format
def write_idx(path: Path, array: np.ndarray):
    "An uncompressed idx file: magic 0x0000 0x08 (uint8) ndim, big-endian uint32 dims, then the bytes."
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist_like(folder: Path, train_x, train_y, test_x, test_y):
    "The four raw idx files torchvision's MNIST/FashionMNIST load from `<root>/<Class>/raw`."
    for prefix, x, y in (("train", train_x, train_y), ("t10k", test_x, test_y)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x[:, 0])  # N x 28 x 28
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y)


def write_cifar10(folder: Path, train_x, train_y, test_x, test_y):
    "data_batch_1..5, test_batch and batches.meta: pickled dicts, 'data' N x 3072 (channel-major rows), 'labels'."
    folder.mkdir(parents=True, exist_ok=True)
    def dump(name, obj): (folder / name).write_bytes(pickle.dumps(obj, protocol=2))
    for i, part in enumerate(np.array_split(np.arange(len(train_y)), 5), start=1):
        dump(f"data_batch_{i}", {"data": train_x[part].reshape(len(part), -1), "labels": train_y[part].tolist()})
    dump("test_batch", {"data": test_x.reshape(len(test_y), -1), "labels": test_y.tolist()})
    dump("batches.meta", {"label_names": CIFAR10_NAMES, "num_cases_per_batch": len(train_y) // 5, "num_vis": 3072})


def write_svhn(folder: Path, train_x, train_y, test_x, test_y):
    "train_32x32.mat / test_32x32.mat: X is H x W x C x N uint8, y is N x 1 with the digit 0 stored as 10."
    folder.mkdir(parents=True, exist_ok=True)
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        stored_y = np.where(y == 0, 10, y).astype(np.uint8)[:, None]
        scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x.transpose(2, 3, 1, 0), "y": stored_y})


# name: (torchvision class name, writer, image shape C x H x W, class names, augmentation)
DATASETS = {
    "mnist": ("MNIST", write_mnist_like, (1, 28, 28), list(tvd.MNIST.classes), "none"),
    "fashionmnist": ("FashionMNIST", write_mnist_like, (1, 28, 28), list(tvd.FashionMNIST.classes), "none"),
    "cifar10": ("CIFAR10", write_cifar10, (3, 32, 32), CIFAR10_NAMES, "crop_flip"),
    "svhn": ("SVHN", write_svhn, (3, 32, 32), [str(d) for d in range(10)], "crop"),
}
NAMES = list(DATASETS)


def raw_split(rng, n, shape):
    "n random uint8 images (N x C x H x W) and labels covering all 10 classes."
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8), rng.permutation(np.arange(n) % 10).astype(np.uint8)


def skip_md5_checks(monkeypatch):
    # CIFAR10 and SVHN compare every file's md5 with the real dataset's (CIFAR10._check_integrity, CIFAR10._load_meta
    # and SVHN._check_integrity all go through their module's `check_integrity`). Our tiny files cannot match, so the
    # check is replaced by "the file exists"; MNIST/FashionMNIST only check existence of the raw files anyway.
    exists = lambda fpath, md5=None: os.path.isfile(fpath)
    monkeypatch.setattr(tvd.cifar, "check_integrity", exists)
    monkeypatch.setattr(tvd.svhn, "check_integrity", exists)


def write_dataset(name, root: Path, seed=0):
    "Write `name` under `root` in its native format; return the uint8 N x C x H x W images and labels written."
    _, writer, shape, _, _ = DATASETS[name]
    rng = np.random.default_rng(seed)
    (train_x, train_y), (test_x, test_y) = raw_split(rng, N_TRAIN, shape), raw_split(rng, N_TEST, shape)
    writer(root / _TORCHVISION_FILES[name][0], train_x, train_y, test_x, test_y)
    return train_x, train_y, test_x, test_y


@pytest.fixture(params=NAMES)
def loaded(request, tmp_path, monkeypatch):
    "(name, raw arrays written, DatasetSplits loaded offline) for each torchvision dataset."
    skip_md5_checks(monkeypatch)
    raw = write_dataset(request.param, tmp_path)
    return request.param, raw, load_dataset(request.param, tmp_path, download=False)


# ---------------------------------------------------------------- loading files that are present
def test_shapes_labels_classes_and_augment(loaded):
    name, (train_x, train_y, test_x, test_y), ds = loaded
    _, _, shape, classes, augment = DATASETS[name]
    assert isinstance(ds, DatasetSplits) and ds.name == name
    assert ds.train_x.shape == (N_TRAIN, *shape) and ds.test_x.shape == (N_TEST, *shape)
    assert ds.train_x.dtype == ds.test_x.dtype == torch.float32
    assert ds.train_y.dtype == ds.test_y.dtype == torch.int64
    assert ds.train_y.tolist() == train_y.tolist() and ds.test_y.tolist() == test_y.tolist()  # SVHN: 10 -> 0
    assert ds.n_classes == 10 and ds.classes == classes and ds.in_shape == shape
    assert ds.augment == augment


def test_training_set_standardised_per_channel(loaded):
    _, _, ds = loaded
    mean, std = ds.train_x.mean(dim=(0, 2, 3)), ds.train_x.std(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, torch.ones_like(std), atol=1e-5, rtol=0)


def test_pixels_are_the_written_bytes_under_one_affine_map_per_channel(loaded):
    "Each channel of train and test is (byte/255 - train mean) / train std: layout, channel order, rank order kept."
    _, (train_x, _, test_x, _), ds = loaded
    scaled_train, scaled_test = train_x / 255.0, test_x / 255.0
    mean = scaled_train.mean(axis=(0, 2, 3), keepdims=True)
    std = scaled_train.std(axis=(0, 2, 3), ddof=1, keepdims=True)
    for got, scaled in ((ds.train_x, scaled_train), (ds.test_x, scaled_test)):
        np.testing.assert_allclose(got.numpy(), (scaled - mean) / std, atol=1e-4, rtol=0)


# ---------------------------------------------------------------- files missing, download off or failing
def assert_explains_layout(error, name, root: Path):
    folder, files = _TORCHVISION_FILES[name]
    message = str(error)
    assert isinstance(error, FileNotFoundError)
    assert str((root / folder).resolve()) in message
    assert all(f in message for f in files), message


@pytest.mark.parametrize("name", NAMES)
def test_missing_files_without_download(name, tmp_path):
    with pytest.raises(DatasetFilesMissing) as caught:
        load_dataset(name, tmp_path, download=False)
    assert_explains_layout(caught.value, name, tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_failed_download_explains_where_to_put_files(name, tmp_path, monkeypatch):
    cls = getattr(tvd, DATASETS[name][0])
    attempts = []
    def no_network(self):  # stands in for torchvision's download: no request is made
        attempts.append(self)
        raise URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(cls, "download", no_network)
    with pytest.raises(DatasetFilesMissing) as caught:
        load_dataset(name, tmp_path, download=True)
    assert len(attempts) == 1
    assert_explains_layout(caught.value, name, tmp_path)
    message = str(caught.value)
    assert "download failed" in message and "URLError" in message and "name resolution" in message
    assert "copy the folder" in message and "data_root=" in message


# ---------------------------------------------------------------- a damaged file
@pytest.mark.parametrize("filename", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
@pytest.mark.parametrize("cut", [slice(6), slice(-5)], ids=["in_header", "in_payload"])  # headers: 8 or 16 bytes
def test_truncated_idx_file_raises(filename, cut, tmp_path):
    write_dataset("mnist", tmp_path)
    path = tmp_path / "MNIST" / "raw" / filename
    path.write_bytes(path.read_bytes()[cut])
    with pytest.raises(DatasetFilesCorrupt) as caught:
        load_dataset("mnist", tmp_path, download=True)  # present files are never re-downloaded
    message = str(caught.value)
    assert "'mnist'" in message and str(path.parent.resolve()) in message and "unreadable" in message


@pytest.mark.parametrize("name, filename", [("cifar10", "data_batch_3"), ("cifar10", "batches.meta"),
                                            ("svhn", "test_32x32.mat"), ("fashionmnist", "train-labels-idx1-ubyte")])
def test_truncated_file_of_each_format_names_the_folder(name, filename, tmp_path, monkeypatch):
    skip_md5_checks(monkeypatch)
    write_dataset(name, tmp_path)
    path = tmp_path / _TORCHVISION_FILES[name][0] / filename
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DatasetFilesCorrupt) as caught:
        load_dataset(name, tmp_path, download=False)
    assert f"{name!r}" in str(caught.value) and str(path.parent.resolve()) in str(caught.value)

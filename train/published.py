"""Published results of comparable models, per data set and family, for the demo report and
docs/training.md. Only numbers whose source could be read are listed; a family without a
verified Fashion-MNIST number says so (and may cite the nearest published data set, labelled
as such) instead of quoting an unverified figure."""
from __future__ import annotations

_FMNIST_README = ("Fashion-MNIST README, benchmark table (zalandoresearch/fashion-mnist; "
                  "Debian dataset-fashion-mnist: /usr/share/doc/dataset-fashion-mnist/README.md.gz)")
_DIFFLOGIC = ("F. Petersen, C. Borgelt, H. Kuehne, O. Deussen, \"Deep Differentiable Logic "
              "Gate Networks\", NeurIPS 2022")
_CONV_DIFFLOGIC = ("F. Petersen, H. Kuehne, C. Borgelt, J. Welzel, S. Ermon, \"Convolutional "
                   "Differentiable Logic Gate Networks\", NeurIPS 2024")

PUBLISHED: dict[str, list[dict]] = {
    "fashion_mnist": [
        {"family": "float", "model": "2 Conv + pooling + BN", "accuracy": "0.934",
         "source": _FMNIST_README},
        {"family": "float", "model": "2 Conv + 2 FC (random horizontal flips)",
         "accuracy": "0.939", "source": _FMNIST_README},
        {"family": "float", "model": "3 Conv + BN + pooling", "accuracy": "0.921",
         "source": _FMNIST_README},
        {"family": "float", "model": "2 Conv + pooling (TensorFlow tutorial)",
         "accuracy": "0.916", "source": _FMNIST_README},
        {"family": "float", "model": "MLP 256-128-100", "accuracy": "0.8833",
         "source": _FMNIST_README},
        {"family": "float", "model": "ResNet18 (augmentation)", "accuracy": "0.949",
         "source": _FMNIST_README},
        {"family": "float", "model": "WRN-28-10 (augmentation)", "accuracy": "0.959",
         "source": _FMNIST_README},
        {"family": "binary", "model": "binary CNN on Fashion-MNIST",
         "accuracy": "not found",
         "source": "no Fashion-MNIST figure in the Larq / bitorch docs available here; Larq's "
                   "MNIST tutorial BNN (larq/docs tutorials/mnist.ipynb) reaches ~0.98 on "
                   "MNIST"},
        {"family": "logic", "model": "dense difflogic net on Fashion-MNIST",
         "accuracy": "not found",
         "source": f"{_DIFFLOGIC} reports MNIST (0.9847, largest model), CIFAR-10 and "
                   "tabular sets, not Fashion-MNIST"},
        {"family": "logic", "model": "convolutional logic-gate net on Fashion-MNIST",
         "accuracy": "not found",
         "source": f"{_CONV_DIFFLOGIC} reports CIFAR-10 (0.8629, 61M gates) and MNIST"},
    ],
}


def published_results(dataset: str) -> list[dict]:
    """Rows {family, model, accuracy, source} for a data set (empty when none are listed)."""
    return list(PUBLISHED.get(dataset, []))

"""Segmentation scores (pixel accuracy, mean class accuracy, mIoU) from a confusion matrix over
the 19 Cityscapes train ids: the probe's validation, label consistency and the augmentation
protocol all count pixels this one way."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fgaug.data.labels import N_TRAIN_IDS, TRAIN_ID_NAMES


@dataclass(frozen=True)
class SegmentationScores:
    """The scores of one confusion matrix (:func:`segmentation_scores`)."""

    pixel_accuracy: float
    mean_class_accuracy: float
    mean_iou: float
    per_class_iou: tuple[float, ...]
    """IoU per class id, NaN for a class neither in the target nor predicted."""

    def named_iou(self) -> dict[str, float]:
        """:attr:`per_class_iou` by train-id name (the scores of the 19 train ids), NaN kept."""
        return dict(zip(TRAIN_ID_NAMES, self.per_class_iou, strict=True))

    def to_dict(self) -> dict[str, float | dict[str, float]]:
        """As reports write them: the per-class IoU by train-id name."""
        return {
            "pixel_accuracy": self.pixel_accuracy,
            "mean_class_accuracy": self.mean_class_accuracy,
            "mean_iou": self.mean_iou,
            "per_class_iou": self.named_iou(),
        }


def confusion_matrix(predicted: np.ndarray, target: np.ndarray, classes: int = N_TRAIN_IDS) -> np.ndarray:
    """``(classes, classes + 1)`` pixel counts: row = target class, column = predicted class, the
    last column counting predictions outside ``[0, classes)`` (always wrong). Target pixels
    outside ``[0, classes)`` (255, ignore) are left out. Matrices of several images add up."""
    if predicted.shape != target.shape:
        raise ValueError(f"prediction {predicted.shape} and target {target.shape} differ in shape")
    target = target.astype(np.int64).ravel()
    predicted = predicted.astype(np.int64).ravel()
    keep = (target >= 0) & (target < classes)
    target, predicted = target[keep], predicted[keep]
    predicted = np.where((predicted >= 0) & (predicted < classes), predicted, classes)
    counts = np.bincount(target * (classes + 1) + predicted, minlength=classes * (classes + 1))
    return counts.reshape(classes, classes + 1)


def segmentation_scores(matrix: np.ndarray) -> SegmentationScores:
    r"""Scores of a :func:`confusion_matrix`.

    .. math:: \mathrm{pixel\ acc} = \frac{\sum_c n_{cc}}{\sum_c t_c}, \quad
              \mathrm{class\ acc} = \frac{1}{|C|}\sum_{c \in C} \frac{n_{cc}}{t_c}, \quad
              \mathrm{mIoU} = \frac{1}{|C|}\sum_{c \in C} \frac{n_{cc}}{t_c + p_c - n_{cc}}

    with :math:`t_c` the target pixels of class c and :math:`p_c` the predicted ones. As in the FCN
    protocol and cityscapesScripts, class accuracy averages the classes present in the target and
    mIoU the classes with a non-empty union, so a class predicted but absent from the target counts
    as IoU 0; a class neither present nor predicted is left out (NaN in ``per_class_iou``).
    """
    classes = matrix.shape[0]
    true_positive = np.diag(matrix[:, :classes]).astype(np.float64)
    target_total = matrix.sum(axis=1)
    predicted_total = matrix[:, :classes].sum(axis=0)
    present = target_total > 0
    union = target_total + predicted_total - true_positive
    seen = union > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        class_accuracy = true_positive / target_total
        iou = true_positive / union
    total = target_total.sum()
    return SegmentationScores(
        pixel_accuracy=float(true_positive.sum() / total) if total else float("nan"),
        mean_class_accuracy=float(class_accuracy[present].mean()) if present.any() else float("nan"),
        mean_iou=float(iou[seen].mean()) if seen.any() else float("nan"),
        per_class_iou=tuple(float(v) if s else float("nan") for v, s in zip(iou, seen, strict=True)),
    )

"""The label table against cityscapesScripts, and the conversions on hand-made arrays."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from fgaug.data.labels import (
    LABELS,
    TRAIN_ID_NAMES,
    color_to_ids,
    ids_to_color,
    ids_to_train_ids,
    invalid_label_ids,
    train_ids_to_ids,
)


def test_table_equals_cityscapesscripts() -> None:
    official = importlib.import_module("cityscapesscripts.helpers.labels")
    assert len(LABELS) == len(official.labels) == 35
    for ours, theirs in zip(LABELS, official.labels, strict=True):
        assert tuple(ours) == tuple(theirs)


def test_train_id_names_in_order() -> None:
    assert TRAIN_ID_NAMES[0] == "road" and TRAIN_ID_NAMES[13] == "car" and TRAIN_ID_NAMES[18] == "bicycle"
    assert len(TRAIN_ID_NAMES) == 19


def test_id_conversions_on_a_tiny_array() -> None:
    ids = np.array([[7, 8, 26], [0, 18, 33]], dtype=np.uint8)
    np.testing.assert_array_equal(ids_to_train_ids(ids), [[0, 1, 13], [255, 255, 18]])
    np.testing.assert_array_equal(train_ids_to_ids(np.array([[0, 13, 255]], np.uint8)), [[7, 26, 0]])
    np.testing.assert_array_equal(ids_to_color(ids)[0, 2], [0, 0, 142])
    assert invalid_label_ids(np.array([[7, 34, 200]], np.uint8)) == [34, 200]


def test_shared_colours_map_to_the_evaluated_id() -> None:
    rgb = np.array([[[0, 0, 0], [0, 0, 142], [153, 153, 153], [111, 74, 0]]], dtype=np.uint8)
    ids, off = color_to_ids(rgb)
    np.testing.assert_array_equal(ids, [[0, 26, 17, 5]])
    assert off == 0.0


def test_off_palette_fraction_and_snapping() -> None:
    rgb = np.array([[[128, 64, 128], [126, 66, 129], [70, 130, 180], [250, 250, 250]]], dtype=np.uint8)
    ids, off = color_to_ids(rgb)
    assert off == pytest.approx(0.5)
    assert ids[0, 1] == 0 and ids[0, 3] == 0  # left unmapped without snapping
    snapped, off_again = color_to_ids(rgb, snap=True)
    assert off_again == pytest.approx(0.5)
    assert snapped[0, 1] == 7  # nearest palette colour is road
    assert snapped[0, 0] == 7 and snapped[0, 2] == 23


def test_label_ids_run_without_a_gap_as_the_instance_value_check_takes_them() -> None:
    from fgaug.data.cityscapes import LAST_LABEL_ID
    from fgaug.data.labels import VALID_LABEL_IDS

    assert frozenset(range(LAST_LABEL_ID + 1)) == VALID_LABEL_IDS

"""A tiny WD14-style tagger built with ``onnx.helper``, whose scores are known in advance.

The model has the real I/O signature (input ``[N, 448, 448, 3]`` float32 NHWC, one sigmoid score per row of
``selected_tags.csv``). It averages each channel over the image, divides by 255 and maps the three means ``m`` to
``sigmoid(m @ W + b)``; :func:`expected_scores` computes the same in numpy, so a test can pick image colours that give
chosen scores and check what the command writes.

Rows (category): general tags that follow channel 0 (which is BLUE, the model sees BGR), channel 2 (red) or none,
a character tag, and three rating rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SIZE = 448
#: (name, category, weights on the B, G, R means (0..1), bias)
ROWS: tuple[tuple[str, int, tuple[float, float, float], float], ...] = (
    ("general", 9, (0.0, 0.0, 0.0), 2.0),  # rating: always the most likely
    ("sensitive", 9, (0.0, 0.0, 0.0), 0.0),
    ("explicit", 9, (0.0, 0.0, 0.0), -2.0),
    ("blue_sky", 0, (8.0, 0.0, 0.0), -4.0),  # score high only for a blue image (B mean near 1)
    ("red_theme", 0, (0.0, 0.0, 8.0), -4.0),  # high only for a red image
    ("solo", 0, (0.0, 0.0, 0.0), 1.0),  # 0.731 for every image
    ("simple_background", 0, (0.0, 0.0, 0.0), -0.2),  # 0.450 for every image
    ("faint_tag", 0, (0.0, 0.0, 0.0), -1.0),  # 0.269: under the default threshold
    ("hatsune_miku", 4, (0.0, 0.0, 0.0), 0.0),  # character, 0.5
    ("^_^", 0, (0.0, 0.0, 0.0), 0.5),  # a kaomoji (0.622): its underscore stays
)


def weights() -> tuple[np.ndarray, np.ndarray]:
    """W [3, T] and b [T] of the model."""
    w = np.array([r[2] for r in ROWS], dtype=np.float32).T.copy()
    b = np.array([r[3] for r in ROWS], dtype=np.float32)
    return w, b


def expected_scores(bgr_means: np.ndarray) -> np.ndarray:
    """The scores the model gives for per-image channel means ``[N, 3]`` (0..255, in B, G, R order)."""
    w, b = weights()
    logits = (np.asarray(bgr_means, dtype=np.float64) / 255.0) @ w + b
    return 1.0 / (1.0 + np.exp(-logits))


def build_tagger(folder: Path, size: int = SIZE, channels_first: bool = False) -> Path:
    """Write ``model.onnx`` and ``selected_tags.csv`` into ``folder``; returns it. ``channels_first``: an export
    that takes ``[N, 3, S, S]`` (the same weights, the means taken over the last two axes)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    w, b = weights()
    shape = [3, size, size] if channels_first else [size, size, 3]
    nodes = [
        helper.make_node(
            "ReduceMean", ["input_1"], ["means"], axes=[2, 3] if channels_first else [1, 2], keepdims=0
        ),
        helper.make_node("Mul", ["means", "scale"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "W"], ["logits0"]),
        helper.make_node("Add", ["logits0", "b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["output"]),
    ]
    inits = [
        numpy_helper.from_array(np.array([1 / 255.0], dtype=np.float32), "scale"),
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(b, "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_tagger",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["batch", *shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", len(ROWS)])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    with open(folder / "selected_tags.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tag_id", "name", "category", "count"])
        for index, (name, category, _, _) in enumerate(ROWS):
            writer.writerow([index, name, category, 1000 - index])
    return folder

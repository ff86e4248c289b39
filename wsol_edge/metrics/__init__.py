"""WSOL metrics: Top-k Cls/Loc, GT-known Loc, MaxBoxAcc, MaxBoxAccV2, PxAP (see evaluation-protocol.md)."""
from .box_accuracy import BoxAccumulator, SatBoxAccumulator, max_box_acc, max_box_acc_v2
from .classification import topk_correct
from .iou import iou_matrix
from .pxap import PxAPAccumulator

PROTOCOLS = ("wsoleval", "sat")

__all__ = ["BoxAccumulator", "SatBoxAccumulator", "max_box_acc", "max_box_acc_v2", "topk_correct",
           "iou_matrix", "PxAPAccumulator", "PROTOCOLS"]

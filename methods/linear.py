"""Linear probing: the frozen backbone's CLS feature feeds a trained linear head, nothing else is trained."""

from torch import nn

from bench.backbones import Backbone
from bench.method import Method, MethodHParams, register_method


@register_method("linear")
class Linear(Method[MethodHParams]):
    """Only the classification head is trained (VPT's TRANSFER_TYPE='linear'); SGD, the protocol's grid.
    The runner computes the frozen features once per task and split and trains the head on them."""

    head_only = True

    def attach(self, backbone: Backbone) -> nn.Module:
        return nn.Module()  # no parameters of its own: the runner always trains the head

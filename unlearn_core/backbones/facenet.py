"""facenet-pytorch's InceptionResnetV1 trained on VGGFace2 (512-D, 160x160 chips).

Loads through facenet-pytorch's own code (torch hub cache, downloading when online). Offline with
no cached weights it fails with ``WeightsUnavailable`` saying where to put the file.
"""
from __future__ import annotations

import os

from torch import nn

from ..errors import WeightsUnavailable
from .base import ARCFACE_TEMPLATE, Backbone, InputSpec, StagedEmbedder, register_backbone

# facenet-pytorch's MTCNN crops a box with margin; we align the same 5 points instead, onto the
# mean landmark layout of 160x160 VGGFace2 training crops (the 112x112 ArcFace template scaled to 160).
INPUTS = InputSpec(size=160, template=ARCFACE_TEMPLATE * (160 / 112), mean=(127.5,) * 3, std=(128.0,) * 3)
"""facenet-pytorch's fixed_image_standardization: (x - 127.5) / 128."""
STAGES = ("stem", "block35", "block17", "block8", "embed")


class FacenetStaged(StagedEmbedder):
    def __init__(self, net: nn.Module):
        super().__init__()
        n = net
        self.stages = nn.ModuleList([
            nn.Sequential(n.conv2d_1a, n.conv2d_2a, n.conv2d_2b, n.maxpool_3a, n.conv2d_3b, n.conv2d_4a, n.conv2d_4b),
            nn.Sequential(n.repeat_1, n.mixed_6a),
            nn.Sequential(n.repeat_2, n.mixed_7a),
            nn.Sequential(n.repeat_3, n.block8),
            nn.Sequential(n.avgpool_1a, nn.Flatten(), n.last_linear, n.last_bn),
        ])


@register_backbone("facenet_vggface2")
def facenet_vggface2() -> Backbone:
    from facenet_pytorch import InceptionResnetV1

    try:
        net = InceptionResnetV1(pretrained="vggface2")
    except Exception as err:  # urllib / hub errors vary by platform
        home = os.environ.get("TORCH_HOME", "~/.cache/torch")
        raise WeightsUnavailable(
            "Could not load facenet-pytorch 'vggface2' weights (no cached copy and no internet: "
            f"{type(err).__name__}). Put '20180402-114759-vggface2.pt' in {home}/checkpoints/ "
            "or run once with internet access."
        ) from err
    return Backbone(
        name="facenet_vggface2",
        module=FacenetStaged(net.eval()).eval(),
        inputs=INPUTS,
        embed_dim=512,
        tail_start=STAGES.index("block8"),
        stage_names=STAGES,
    )

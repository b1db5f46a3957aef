from .attention import MultiScaleAttention
from .block import MultiScaleBlock
from .drop_path import DropPath
from .patch_embed import PatchEmbed
from .rel_pos import decomposed_rel_pos_bias, resize_rel_pos

__all__ = [
    "MultiScaleAttention",
    "MultiScaleBlock",
    "DropPath",
    "PatchEmbed",
    "decomposed_rel_pos_bias",
    "resize_rel_pos",
]

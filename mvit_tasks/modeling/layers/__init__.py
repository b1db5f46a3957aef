"""The MViT layers. They take plain, typed settings (:mod:`.spec`) and import nothing from
the backbone."""
from .attention import MultiScaleAttention
from .block import MultiScaleBlock
from .drop_path import DropPath
from .patch_embed import PatchEmbed
from .rel_pos import decomposed_rel_pos_bias, resize_rel_pos
from .spec import AttentionOptions, BlockSpec

__all__ = [
    "AttentionOptions",
    "BlockSpec",
    "MultiScaleAttention",
    "MultiScaleBlock",
    "DropPath",
    "PatchEmbed",
    "decomposed_rel_pos_bias",
    "resize_rel_pos",
]

"""Small utilities shared by tools and tasks (``flops``: parameter and FLOP counting)."""

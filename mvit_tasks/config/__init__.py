"""Config system: ``get_cfg()``, ``_BASE_`` inheritance, ``KEY VALUE`` overrides, core keys only.

Typical use (tools/train_net.py)::

    cfg = load_config(args.config_file, args.opts, extra_config_fns=[task_cls.add_config])
    arch = arch_from_cfg(cfg)
"""

from mvit_tasks.config.config import (
    BASE_KEY,
    CfgNode,
    ConfigError,
    ConfigTypeError,
    UnknownKeyError,
    UnsafeYAMLError,
    deprecate_key,
    get_cfg,
    load_config,
    require_list_length,
)
from mvit_tasks.config.defaults import arch_from_cfg, build_core_defaults, cfg_from_arch

__all__ = [
    "BASE_KEY",
    "CfgNode",
    "ConfigError",
    "ConfigTypeError",
    "UnknownKeyError",
    "UnsafeYAMLError",
    "arch_from_cfg",
    "build_core_defaults",
    "cfg_from_arch",
    "deprecate_key",
    "get_cfg",
    "load_config",
    "require_list_length",
]

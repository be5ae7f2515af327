"""Config schema and loader (torch-free). YAML is read only by the CLI through ``load_config``."""

from qnas.config.loader import dump_yaml, from_dict, to_dict
from qnas.config.schema import (
    AugmentConfig,
    CompareConfig,
    Config,
    GumbelConfig,
    DataConfig,
    DeployConfig,
    PhaseConfig,
    QuantConfig,
    SearchConfig,
    TrainConfig,
    config_difference,
    config_hash,
    load_config,
)

__all__ = [
    "AugmentConfig", "CompareConfig", "Config", "GumbelConfig", "DataConfig", "DeployConfig", "PhaseConfig", "QuantConfig", "SearchConfig", "TrainConfig", "config_difference", "config_hash",
    "dump_yaml", "from_dict", "load_config", "to_dict",
]

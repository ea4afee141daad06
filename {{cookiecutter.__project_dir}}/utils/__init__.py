from utils.errors import CheckpointError, ConfigError, DataError, UserError
from utils.metric_tracker import MetricTracker

__all__ = ["CheckpointError", "ConfigError", "DataError", "MetricTracker", "UserError"]

from utils.errors import CheckpointError, ConfigError, UserError
from utils.metric_tracker import MetricTracker

__all__ = ["CheckpointError", "ConfigError", "MetricTracker", "UserError"]

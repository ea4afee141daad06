from logger.logger import attach_log_file, setup_logging
from logger.visualization import TensorboardWriter

__all__ = ["TensorboardWriter", "attach_log_file", "setup_logging"]

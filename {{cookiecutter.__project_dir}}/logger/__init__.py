from logger.logger import log_file, setup_logging

__all__ = ["log_file", "setup_logging"]

from logger.logger import attach_log_file, setup_logging

__all__ = ["attach_log_file", "setup_logging"]

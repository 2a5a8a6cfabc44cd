"""Worker pools, thread limits, process-safe logging, status reporting."""

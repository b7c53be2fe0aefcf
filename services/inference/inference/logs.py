"""JSON log lines on stdout, for the service and for uvicorn alike."""

from __future__ import annotations

from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping, also accepted by uvicorn as ``log_config``."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
                "datefmt": "%Y-%m-%dT%H:%M:%S%z",
                # uvicorn duplicates some messages with terminal colour codes.
                "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
            },
        },
        "filters": {
            "request_id": {"()": "inference.request_id.RequestIdFilter"},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["request_id"],
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            # uvicorn's own loggers carry handlers by default; route them to ours.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": True},
            # botocore logs credentials lookups and retries at INFO and below.
            "botocore": {"level": "WARNING"},
        },
    }

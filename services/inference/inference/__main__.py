"""``python3 -m inference``: serve the API with uvicorn on ``INFERENCE_PORT``."""

from __future__ import annotations

import logging.config
import sys

import uvicorn
from pydantic import ValidationError

from inference.app import create_app
from inference.logs import logging_config
from inference.settings import Settings


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        logging.config.dictConfig(logging_config("info"))
        logging.getLogger("inference").critical(
            "invalid configuration",
            extra={
                "errors": exc.errors(include_input=False, include_context=False, include_url=False)
            },
        )
        sys.exit(2)
    config = logging_config(settings.log_level)
    logging.config.dictConfig(config)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=config,
        # The gateway in front keeps connections alive; outlive its idle timeout.
        timeout_keep_alive=75,
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()

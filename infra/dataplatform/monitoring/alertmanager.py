"""Alertmanager's configuration: one route, grouped per alert and job.

Alerts are kept and shown by Alertmanager (its UI and API on port 9093);
a team adds its receivers (e-mail, chat, paging) to ``RECEIVER``.
"""

from __future__ import annotations

from typing import Any

import yaml

RECEIVER = "platform"


def config() -> dict[str, Any]:
    return {
        "route": {
            "receiver": RECEIVER,
            "group_by": ["alertname", "job"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [{"name": RECEIVER}],
        # A whole service down says more than each of its targets down.
        "inhibit_rules": [
            {
                "source_matchers": ['alertname="ServiceDown"'],
                "target_matchers": ['alertname="TargetDown"'],
                "equal": ["job"],
            }
        ],
    }


def config_yaml() -> str:
    return yaml.safe_dump(config(), sort_keys=False)

"""The built-in workflows every tenant gets when its onboarding starts. Pure data.

Their ids are fixed (`builtin-<name>`), so installing them again changes nothing. A tenant may archive
one, edit it (a new draft version) or activate another version, like any workflow.
"""

from __future__ import annotations

from typing import Any

PRIVACY = "builtin-privacy-request"

BUILTINS: dict[str, dict[str, Any]] = {
    PRIVACY: {
        "name": "Answer privacy requests",
        "description": "Exports or erases the data subject's customer data through the Customer Data API.",
        "definition": {
            "trigger": "Privacy Request Received",
            "conditions": None,
            "steps": [
                {"name": "fulfil", "type": "privacy_request"},
                {
                    "name": "tell-admins",
                    "type": "notify",
                    "channel": "email",
                    "to": "admins",
                    "message": "Privacy request {{request_id}} ({{request_type}}) was processed; "
                    "it is due by {{due_at}}.",
                },
            ],
        },
    },
    "builtin-critical-alert": {
        "name": "Tell admins about critical audit alerts",
        "description": "A high or critical audit alert notifies the tenant's admins.",
        "definition": {
            "trigger": "Audit Alert Triggered",
            "conditions": {"path": "severity", "op": "in", "value": ["high", "critical"]},
            "steps": [
                {
                    "name": "tell-admins",
                    "type": "notify",
                    "channel": "email",
                    "message": "Audit alert: {{rule_name}} ({{severity}}): {{summary}}",
                }
            ],
        },
    },
    "builtin-health-at-risk": {
        "name": "Flag customers at risk",
        "description": "A health score that drops to at risk or critical notifies the tenant's admins.",
        "definition": {
            "trigger": "Health Score Changed",
            "conditions": {"path": "grade", "op": "in", "value": ["at_risk", "critical"]},
            "steps": [
                {
                    "name": "tell-admins",
                    "type": "notify",
                    "message": "Health score fell to {{score}} ({{grade}}), from {{previous_score}}.",
                }
            ],
        },
    },
}

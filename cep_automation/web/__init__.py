"""The HTTP service: health, metrics, job ingress for the CMS, the Meta Lead Ads webhook and the dashboard."""

from __future__ import annotations

from cep_automation.web.app import create_app
from cep_automation.web.server import ServerThread, build_server

__all__ = ["ServerThread", "build_server", "create_app"]

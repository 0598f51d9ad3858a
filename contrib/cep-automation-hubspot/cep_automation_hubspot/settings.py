"""The plugin's own settings, read from ``HUBSPOT_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "HUBSPOT_"


class HubSpotSettings(BaseSettings):
    """``HUBSPOT_TOKEN`` (a private-app or OAuth token) and ``HUBSPOT_BASE_URL``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", case_sensitive=False)

    token: SecretStr | None = None
    base_url: str = "https://api.hubapi.com"

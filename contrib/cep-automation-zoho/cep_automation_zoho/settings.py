"""The plugin's own settings, read from ``ZOHO_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "ZOHO_"


class ZohoSettings(BaseSettings):
    """The account's API domain (``api_domain`` of the OAuth token answer), an access token, the API version."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", case_sensitive=False)

    api_domain: str | None = None  # e.g. https://www.zohoapis.eu: each data centre has its own
    token: SecretStr | None = None
    api_version: str = "v8"

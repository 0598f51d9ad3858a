"""The plugin's own settings, read from ``SALESFORCE_*`` environment variables (or a ``.env`` file)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "SALESFORCE_"


class SalesforceSettings(BaseSettings):
    """The org's My Domain URL, an access token, the REST API version and the Lead's external id field."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", case_sensitive=False)

    instance_url: str | None = None  # https://<MyDomain>.my.salesforce.com
    token: SecretStr | None = None
    api_version: str = "60.0"  # "60.0" or "v60.0"
    external_id_field: str = "ExtId__c"

    @property
    def version_path(self) -> str:
        """``v60.0``, as the REST paths spell it."""
        return "v" + self.api_version.strip().lstrip("vV")

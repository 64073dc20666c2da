"""Databento Historical API over its documented HTTP interface (PROVIDERS.md §3).

Auth is HTTP Basic with the API key as username and an empty password. Verify uses the free
`metadata.list_datasets` call and checks that the configured dataset is available to the key.
"""

from __future__ import annotations

from typing import Any

from apps.integrations.base import ProviderClient, require
from apps.integrations.errors import IntegrationError

DEFAULT_DATASET = "GLBX.MDP3"  # CME Globex MDP 3.0


def _string_list(body: Any) -> None:
    require(isinstance(body, list), "expected a JSON array of dataset codes")
    require(all(isinstance(item, str) for item in body), "expected dataset codes as strings")


class DatabentoClient(ProviderClient):
    provider = "databento"

    @property
    def dataset(self) -> str:
        return self.credentials.get("DATABENTO_DATASET", DEFAULT_DATASET)

    def _auth(self) -> tuple[str, str]:
        return (self.credentials.get("DATABENTO_API_KEY"), "")

    def list_datasets(self, *, operation: str = "metadata.list_datasets") -> list[str]:
        return self.request(
            operation, "GET", "/v0/metadata.list_datasets", auth=self._auth(), validate=_string_list
        ).body

    def verify(self) -> dict[str, Any]:
        datasets = self.list_datasets(operation="verify")
        if self.dataset not in datasets:
            raise IntegrationError(
                f"The key works, but dataset {self.dataset} is not available to it.",
                error_code="INTEGRATION_PERMISSION_DENIED",
                provider=self.provider,
                suggested_fix=f"Subscribe this key to {self.dataset} on databento.com, or set DATABENTO_DATASET "
                f"to one of: {', '.join(datasets[:10])}.",
            )
        return {"datasets": len(datasets), "dataset": self.dataset}

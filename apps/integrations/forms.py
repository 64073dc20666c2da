from __future__ import annotations

from typing import Any

from django import forms

from apps.integrations.registry import ProviderSpec


class CredentialsForm(forms.Form):
    """One masked, write-only field per variable. Blank fields are left as they are."""

    def __init__(self, *args: Any, spec: ProviderSpec, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spec = spec
        for name in spec.all_env_vars:
            self.fields[name] = forms.CharField(
                label=name,
                required=False,
                strip=True,
                # render_value=False: a submitted value is never sent back, even on a form error.
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
            )

    def entered(self) -> dict[str, str]:
        return {k: v for k, v in self.cleaned_data.items() if v}

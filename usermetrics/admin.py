"""Django admin for identities (sync): staff name NAT's user UUIDs without storing any secret."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from usermetrics.identities import user_id_derive
from usermetrics.models import Identity


class IdentityForm(forms.ModelForm):
    """Label, kind and the credential; the credential is turned into NAT's user id and dropped."""

    value = forms.CharField(
        label="Credential",
        strip=False,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=(
            "The nat-session cookie, the JWT subject, the API key, or user:password for Basic. "
            "Only the user id NAT derives from it is stored; leave empty to keep the current one."
        ),
    )

    class Meta:
        model = Identity
        fields = ["label", "kind"]

    def clean(self) -> dict[str, Any]:
        """Derive the user id from kind and credential (required when adding or changing the kind)."""
        cleaned = super().clean()
        value = cleaned.get("value") or ""
        kind = cleaned.get("kind")
        adding = self.instance.pk is None
        if not value:
            if adding or "kind" in self.changed_data:
                self.add_error("value", "Enter the credential: the user id is derived from it.")
            return cleaned
        if kind:
            try:
                user_id = user_id_derive(kind=kind, value=value)
            except ValueError as exc:
                self.add_error("value", str(exc))
                return cleaned
            clash = Identity.objects.filter(user_id=user_id).exclude(pk=self.instance.pk).first()
            if clash is not None:
                self.add_error("value", f"This credential is already registered as {clash.label!r}.")
            self.instance.user_id = user_id
        # Never keep the secret around longer than this request needs it.
        cleaned["value"] = ""
        return cleaned


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    """Register, rename and search known identities."""

    form = IdentityForm
    list_display = ["label", "kind", "user_id", "created_at"]
    list_filter = ["kind"]
    search_fields = ["label", "user_id"]
    readonly_fields = ["user_id", "created_at"]

    def get_fields(self, request: HttpRequest, obj: Identity | None = None) -> list[str]:
        """The credential field on the form; the derived id, read-only, once it exists."""
        if obj is None:
            return ["label", "kind", "value"]
        return ["label", "kind", "value", "user_id", "created_at"]

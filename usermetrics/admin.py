"""Django admin (sync): identities (names for NAT's user UUIDs, no secret stored), alert rules, silences, prices,
and the log of actions on users (read-only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from usermetrics.alerts.delivery import route_label, route_valid, routes_parse
from usermetrics.alerts.rules import THRESHOLD_KINDS
from usermetrics.conf import get_config
from usermetrics.identities import user_id_derive
from usermetrics.models import AlertRule, Identity, ModelPrice, Silence, UserAction
from usermetrics.prices import PriceTable


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


class SecretTextarea(forms.Textarea):
    """A textarea that never writes its value back into the page (like ``PasswordInput(render_value=False)``)."""

    def format_value(self, value: Any) -> str | None:
        """Nothing: a form shown again after an error does not echo the routes typed."""
        return None


class AlertRuleForm(forms.ModelForm):
    """A rule; its routes are written, never shown: they are Apprise URLs that may hold secrets."""

    routes_new = forms.CharField(
        label="Routes",
        required=False,
        strip=True,
        widget=SecretTextarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
    )
    routes_clear = forms.BooleanField(label="Use the default routes", required=False)

    class Meta:
        model = AlertRule
        fields = [
            "name",
            "kind",
            "enabled",
            "severity",
            "threshold",
            "clear_threshold",
            "window",
            "for_seconds",
            "clear_seconds",
            "remind_seconds",
            "description",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Say which routes the rule has now, in Apprise's privacy form."""
        super().__init__(*args, **kwargs)
        current = [route_label(url) for url in routes_parse(self.instance.routes or "")]
        now = "; ".join(current) if current else "none: the default routes (USERMETRICS_ALERT_URLS)"
        self.fields["routes_new"].help_text = (
            "Apprise URLs, one per line, e.g. slack://TokenA/TokenB/TokenC/#ops or json://hooks.example.com/alerts."
            " Entering any replaces the current ones; leave empty to keep them (after an error, enter them again:"
            f" routes are never shown). Now: {now}."
        )
        self.fields["routes_clear"].help_text = "Forget this rule's own routes."
        # Only user budgets read the window: a form that leaves it out keeps the default.
        self.fields["window"].required = False

    def clean(self) -> dict[str, Any]:
        """A threshold where the kind needs one; every route an Apprise URL (named by line, never echoed)."""
        cleaned = super().clean()
        if cleaned.get("kind") in THRESHOLD_KINDS and cleaned.get("threshold") is None:
            self.add_error("threshold", "This kind of rule needs a threshold.")
        if not cleaned.get("window"):
            cleaned["window"] = self.instance.window or AlertRule._meta.get_field("window").default
        text = cleaned.get("routes_new") or ""
        lines = [line for line in text.splitlines() if line.strip()]
        bad = [n for n, line in enumerate(lines, 1) if not all(route_valid(u) for u in routes_parse(line) or [line])]
        if bad:
            self.add_error("routes_new", f"Not an Apprise URL on line {', '.join(map(str, bad))}.")
        return cleaned

    def save(self, commit: bool = True) -> AlertRule:
        """Keep, replace or clear the routes."""
        rule = super().save(commit=False)
        if self.cleaned_data.get("routes_clear"):
            rule.routes = ""
        elif self.cleaned_data.get("routes_new"):
            rule.routes = "\n".join(routes_parse(self.cleaned_data["routes_new"]))
        if commit:
            rule.save()
        return rule


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    """Alert rules: what fires, after how long, how loud, and where it goes."""

    form = AlertRuleForm
    list_display = ["name", "kind", "enabled", "severity", "threshold", "for_seconds", "remind_seconds", "routed"]
    list_filter = ["enabled", "kind", "severity"]
    list_editable = ["enabled"]
    search_fields = ["name", "description"]

    @admin.display(boolean=True, description="own routes")
    def routed(self, obj: AlertRule) -> bool:
        """Whether the rule has routes of its own."""
        return bool(obj.routes.strip())


def _in_an_hour() -> datetime:
    return timezone.now() + timedelta(hours=1)


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    """Silences: mute a rule, a user or a source until a time (notifications only: alerts still show)."""

    list_display = ["__str__", "rule", "user_id", "source", "starts_at", "ends_at", "active", "created_by"]
    list_filter = ["rule"]
    search_fields = ["user_id", "source", "comment"]
    fields = ["rule", "user_id", "source", "starts_at", "ends_at", "comment", "created_by"]
    readonly_fields = ["created_by"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """From now, for an hour."""
        return {"starts_at": timezone.now(), "ends_at": _in_an_hour(), **super().get_changeform_initial_data(request)}

    @admin.display(boolean=True)
    def active(self, obj: Silence) -> bool:
        """In force now."""
        return obj.starts_at <= timezone.now() < obj.ends_at

    def save_model(self, request: HttpRequest, obj: Model, form: ModelForm, change: bool) -> None:
        """Remember who silenced it."""
        if not change and isinstance(obj, Silence):
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)


@admin.register(UserAction)
class UserActionAdmin(admin.ModelAdmin):
    """The actions taken on users (evict, hold, release): a log, read-only; the user page and the API write it."""

    list_display = ["by", "at", "user_id", "action", "reason", "outcome"]
    list_filter = ["action", "outcome", "at"]
    search_fields = ["user_id", "by", "reason"]
    date_hierarchy = "at"
    readonly_fields = [
        "by",
        "by_user",
        "at",
        "user_id",
        "action",
        "reason",
        "until",
        "command_id",
        "outcome",
        "results",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Actions are taken on the user's page or through the API, never typed in here."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        """A log is not edited."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        """Nor pruned by hand."""
        return False


def settings_prices_words(table: PriceTable) -> list[str]:
    """The settings' prices, one line per model: 'gpt-4o: prompt 2.5, completion 10, cached 1.25 USD per million'."""
    return [
        f"{model}: prompt {p.prompt:g}, completion {p.completion:g}, cached {p.cached:g} {table.currency} per million"
        for model, p in sorted(table.prices.items())
    ]


class ModelPriceForm(forms.ModelForm):
    """A model's prices, in the deployment's one currency (costs of two currencies never add up)."""

    class Meta:
        model = ModelPrice
        fields = ["model", "prompt", "completion", "cached", "currency"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """The currency starts as the deployment's; the model's help names the models the settings price."""
        super().__init__(*args, **kwargs)
        table = get_config().prices
        self.fields["currency"].initial = table.currency
        self.fields["currency"].help_text = f"The deployment's currency, {table.currency} (USERMETRICS_CURRENCY)."
        priced = ", ".join(sorted(table.prices)) or "none"
        self.fields["model"].help_text += f" Priced by the settings (USERMETRICS_PRICES; a price here wins): {priced}."

    def clean_currency(self) -> str:
        """The deployment's currency, or a clear refusal: a cost is never the sum of two currencies."""
        currency = (self.cleaned_data.get("currency") or "").strip().upper()
        expected = get_config().prices.currency
        if currency != expected:
            raise forms.ValidationError(
                f"Prices here are in {expected} (USERMETRICS_CURRENCY), not {currency or 'no currency'}: costs in"
                f" two currencies cannot be added up. Enter the price in {expected}."
            )
        return currency


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """What models' tokens cost, per million, over the settings' prices (users' costs see a change within 10 s)."""

    form = ModelPriceForm
    list_display = ["model", "prompt", "completion", "cached", "currency", "updated_at"]
    search_fields = ["model"]
    readonly_fields = ["updated_at"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The list, with the prices the settings set (read-only here) under its title."""
        table = get_config().prices
        context = {
            "settings_prices": settings_prices_words(table),
            "currency": table.currency,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

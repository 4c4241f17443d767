from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    default = True  # this module also holds StudioAdminConfig
    verbose_name = "Accounts: roles, sign-in, the admin site"


class StudioAdminConfig(admin_apps.AdminConfig):
    """The Django admin with a site that lets the admin role in (accounts/admin_site.py)."""

    default = False
    default_site = "accounts.admin_site.StudioAdminSite"

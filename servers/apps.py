from django.apps import AppConfig


class ServersConfig(AppConfig):
    name = "servers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every pool event becomes an Alert row (and a mail to ADMINS, deduplicated).
        from .alerts import connect_receivers

        connect_receivers()

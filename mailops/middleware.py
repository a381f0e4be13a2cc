from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware


class LoginRequiredEverywhereMiddleware(LoginRequiredMiddleware):
    """Django's login-required default, with API views left to DRF.

    DRF views authenticate tokens as well as sessions, which this middleware cannot see,
    so they are skipped here and their default permission (IsOperatorOrReadOnly)
    refuses anonymous callers with 401/403 instead of a redirect.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if getattr(view_func, "cls", None) is not None and hasattr(view_func.cls, "permission_classes"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)



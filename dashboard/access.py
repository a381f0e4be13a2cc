"""Who may press which button. Viewers see the same pages without the controls, and a crafted
POST from a viewer is refused here, not merely hidden in the template."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from mailops.permissions import is_operator


def operator_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A view only operators may call (an edit form, say); everyone else gets 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_operator(request.user):
            raise PermissionDenied("Your account can only read. Ask an administrator for the operators role.")
        return view(request, *args, **kwargs)

    return wrapped


def operator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """An action: POST only, operators only."""
    return require_POST(operator_only(view))

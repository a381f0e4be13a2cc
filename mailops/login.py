"""The sign-in page, with failed attempts limited per username and address (mailops/throttling.py)."""

from __future__ import annotations

import logging

from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.utils.translation import ngettext

from . import throttling

log = logging.getLogger(__name__)


class ThrottledLoginView(auth_views.LoginView):
    """Django's LoginView that stops checking passwords after too many failures.

    A locked-out attempt is refused before the password is even looked at, so a guesser
    learns nothing from it, and the answer is 429 with Retry-After so scripts back off.
    """

    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs) -> HttpResponse:
        username = request.POST.get("username", "")
        address = throttling.client_address(request)
        wait = throttling.retry_after(username, address)
        if wait:
            log.warning("sign-in refused: too many failures for a username from %s", address)
            # Bound without the password, so validating it cannot call authenticate().
            form = self.get_form_class()(request, data={"username": username})
            form.is_valid()
            form.errors.clear()
            form.add_error(None, locked_out_message(wait))
            response = self.render_to_response(self.get_context_data(form=form))
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form) -> HttpResponse:
        throttling.record_failure(self.request.POST.get("username", ""), throttling.client_address(self.request))
        return super().form_invalid(form)

    def form_valid(self, form) -> HttpResponse:
        throttling.clear_failures(form.get_user().get_username(), throttling.client_address(self.request))
        return super().form_valid(form)


def locked_out_message(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return ngettext(
        "Too many failed sign-in attempts. Try again in %(n)d minute, or ask an administrator to reset your password.",
        "Too many failed sign-in attempts. Try again in %(n)d minutes, or ask an administrator to reset your password.",
        minutes,
    ) % {"n": minutes}


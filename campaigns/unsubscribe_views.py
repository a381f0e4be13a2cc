"""The public unsubscribe page: GET confirms, POST unsubscribes at once (RFC 8058 one-click).

No login and no CSRF token: mail clients POST `List-Unsubscribe=One-Click` from their
own servers without either. The signed token is the protection: it names the address
and cannot be forged. A GET never unsubscribes, because link scanners and mail
previews fetch every URL in a message.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from . import services
from .unsubscribe import read_token

TEMPLATE = "campaigns/unsubscribe.html"
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


@login_not_required
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    claim = read_token(token)
    if claim is None:
        return render(request, TEMPLATE, {"state": "invalid"}, status=400)
    if request.method == "GET":
        return render(request, TEMPLATE, {"state": "confirm", "email": claim.email})
    one_click = request.POST.get("List-Unsubscribe") == "One-Click"
    services.unsubscribe(
        email=claim.email,
        message_id=claim.message_id,
        campaign_id=claim.campaign_id,
        one_click=one_click,
    )
    return render(request, TEMPLATE, {"state": "done", "email": claim.email})

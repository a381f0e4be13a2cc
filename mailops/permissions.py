from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

OPERATORS_GROUP = "operators"
VIEWERS_GROUP = "viewers"


def is_operator(user) -> bool:
    """Superusers and members of the operators group change things; everyone else only reads."""
    if not (user and user.is_authenticated):
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(name=OPERATORS_GROUP).exists()


class IsOperatorOrReadOnly(BasePermission):
    message = "Your account can only read. Ask an administrator for the operators role."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in SAFE_METHODS:
            return True
        return is_operator(request.user)

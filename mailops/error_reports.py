"""Error reports (the DEBUG page, and the mails Django sends ADMINS on a 500) without secrets.

Django's SafeExceptionReporterFilter only hides POST fields and local variables that a
view marked with @sensitive_post_parameters / @sensitive_variables, and only when DEBUG is
off. A server form posts `password` and `api_key`, and the API takes `apiKey`; forgetting
one decorator would mail a relay password to every admin. This filter hides every POST
field and local variable whose name looks secret (password, api_key, token, secret, …),
recursively inside dicts, always.
"""

from __future__ import annotations

from django.views.debug import SafeExceptionReporterFilter


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request) -> bool:
        return True

    def get_post_parameters(self, request):
        parameters = super().get_post_parameters(request)
        if request is None or not parameters:
            return parameters
        cleansed = parameters.copy()
        for key in cleansed:
            if self.hidden_settings.search(key):
                cleansed[key] = self.cleansed_substitute
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        return [(name, self.cleanse_setting(name, value)) for name, value in super().get_traceback_frame_variables(request, tb_frame)]

"""The interface speaks English and Spanish: chosen by the browser, or by the user with the switcher."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_a_spanish_browser_gets_the_spanish_interface(operator_client, world):
    body = operator_client.get(
        reverse("dashboard:overview"), headers={"Accept-Language": "es-ES,es;q=0.9"}
    ).content.decode()
    assert '<html lang="es">' in body
    for text in (
        "Resumen",
        "Servidores activos",
        "Reputación promedio",
        "Últimas alertas",
        "Recomendaciones",
        "Reconocer",
    ):
        assert text in body, text


def test_every_page_has_spanish_headings(operator_client, world):
    headings = {
        reverse("dashboard:presets"): [
            "Presets y costos",
            "¿Cuántos emails al día?",
            "Comparación de costos",
            "Recomendado",
        ],
        reverse("dashboard:servers"): ["El pool de relays", "Comprobar ahora", "sin configurar"],
        reverse("dashboard:server-detail", args=[world.servers[0].pk]): [
            "Reputación, 30 días",
            "Historial de listas negras",
            "Editar servidor",
        ],
        reverse("dashboard:prospects"): ["Subir un CSV", "Importaciones recientes"],
        reverse("dashboard:campaigns"): ["Nueva campaña", "Borrador"],
        reverse("dashboard:campaign-detail", args=[world.campaign.pk]): ["Envío de prueba", "Iniciar", "Pendientes"],
        reverse("dashboard:suppressions"): ["Lista de supresión", "Rebote duro"],
        reverse("dashboard:alerts"): ["Todos los niveles", "Crítico"],
    }
    for url, texts in headings.items():
        body = operator_client.get(url, headers={"Accept-Language": "es"}).content.decode()
        for text in texts:
            assert text in body, f"{text!r} missing from {url}"


def test_the_switcher_sets_the_language_even_before_sign_in(client, world):
    response = client.post(reverse("dashboard:set_language"), {"language": "es", "next": reverse("login")})
    assert response.status_code == 302 and response["Location"] == reverse("login")
    body = client.get(reverse("login")).content.decode()
    assert "Iniciar sesión" in body
    client.post(reverse("dashboard:set_language"), {"language": "en", "next": reverse("login")})
    assert "Sign in" in client.get(reverse("login")).content.decode()


def test_numbers_are_grouped_the_spanish_way(operator_client, world):
    body = operator_client.get(reverse("dashboard:presets"), headers={"Accept-Language": "es"}).content.decode()
    assert "75\xa0000" in body  # professional's emails a month, grouped as Django's Spanish format does

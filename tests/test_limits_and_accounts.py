"""Abuse limits (request size, login throttling through the shared cache) and the demo data command."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from spatiallab.accounts.roles import Role, user_roles
from spatiallab.prompts.models import PromptSet
from tests.factories import PASSWORD


@pytest.mark.django_db
class TestRequestSize:
    def test_body_over_the_limit_is_refused_before_any_view_reads_it(self, client, researcher, settings):
        settings.MAX_REQUEST_BYTES = 1000
        client.force_login(researcher)
        response = client.post("/api/v1/jobs/", data=b"x" * 1001, content_type="application/json")
        assert response.status_code == 413
        assert "limit is 1000 bytes" in response.json()["detail"]

    def test_body_within_the_limit_reaches_the_view(self, client, researcher, settings):
        settings.MAX_REQUEST_BYTES = 1000
        client.force_login(researcher)
        response = client.post("/api/v1/jobs/", data=b"{not json", content_type="application/json")
        assert response.status_code == 400

    def test_malformed_content_length_is_a_clear_400(self, client):
        response = client.generic("POST", "/login/", b"", CONTENT_LENGTH="lots")
        assert response.status_code == 400
        assert "Content-Length" in response.json()["detail"]


@pytest.mark.django_db
class TestLogin:
    def test_login_and_logout(self, client, researcher):
        response = client.post("/login/", {"username": "res", "password": PASSWORD})
        assert response.status_code == 302 and response["Location"] == "/"
        assert client.get("/dashboard/").status_code == 200
        assert client.post("/logout/").status_code == 302
        assert client.get("/dashboard/").status_code == 302

    def test_wrong_password_is_refused_with_a_message(self, client, researcher):
        response = client.post("/login/", {"username": "res", "password": "wrong"})
        assert response.status_code == 200
        assert b"Please enter a correct username and password" in response.content

    def test_repeated_failures_for_one_username_are_throttled_even_from_many_addresses(
        self, client, researcher, settings
    ):
        settings.LOGIN_RATE = "3/m"
        for attempt in range(3):
            response = client.post("/login/", {"username": "res", "password": "bad"},
                                   REMOTE_ADDR=f"10.0.0.{attempt}")
            assert response.status_code == 200
        response = client.post("/login/", {"username": "RES", "password": PASSWORD}, REMOTE_ADDR="10.0.0.99")
        assert response.status_code == 429
        assert response["Retry-After"] == "60"
        assert b"Too many login attempts" in response.content
        # Even the right password is refused while throttled: the limit is on guessing, not on failing.
        assert "_auth_user_id" not in client.session

    def test_one_address_trying_many_usernames_is_throttled(self, client, settings):
        settings.LOGIN_RATE = "3/m"
        codes = [client.post("/login/", {"username": f"u{i}", "password": "x"}).status_code for i in range(4)]
        assert codes == [200, 200, 200, 429]


@pytest.mark.django_db
class TestSeedDemo:
    def test_creates_one_account_per_role_and_the_demo_prompt_set_and_is_idempotent(self, capsys):
        call_command("seed_demo")
        call_command("seed_demo")
        out = capsys.readouterr().out
        assert "username: researcher" in out and "password: research-spatial-2026" in out
        users = {u.username: u for u in get_user_model().objects.all()}
        assert set(users) == {"annotator", "researcher", "admin"}
        assert user_roles(users["annotator"]) == {Role.ANNOTATOR}
        assert user_roles(users["researcher"]) == {Role.RESEARCHER}
        assert users["admin"].is_staff and users["admin"].is_superuser
        assert users["researcher"].check_password("research-spatial-2026")
        [prompt_set] = PromptSet.objects.all()
        assert prompt_set.prompts.count() == 8
        assert all(40 <= p.word_count <= 120 for p in prompt_set.prompts.all())

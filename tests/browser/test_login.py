import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_user_logs_in_through_the_form_and_sees_the_navigation_of_their_role(
    page, live_server, login, annotator
):
    login(page, annotator)
    nav = page.locator("nav[aria-label=Main]")
    assert nav.get_by_text("Review").is_visible()
    assert nav.get_by_text("Generation").count() == 0

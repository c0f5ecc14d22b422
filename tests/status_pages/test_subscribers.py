"""Subscribing to a public status page by email, against a real aiosmtpd server on 127.0.0.1:
double opt-in (the mailed link, 48 hours), an active address never told apart from a new one, an
HTML form's post, components of the page only, the unsubscribe link and RFC 8058's one-click POST,
rate limits per address and per page, private and unknown pages; owners' list and delete."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from control_plane.models.status_pages import PageSubscriber
from control_plane.status_pages.subscribers import token_hash
from tests.factories import insert_monitor
from tests.status_pages.mailing import (
    client_of,
    confirm_token,
    mails_to,
    subscribe,
    unsubscribe_token,
)
from tests.status_pages.support import create_page

SUBSCRIBE = "/status/acme-status/subscribe"
CONFIRM = "/status/acme-status/subscribe/confirm"
UNSUBSCRIBE = "/status/acme-status/unsubscribe"
SUBSCRIBERS = "/api/status-pages/acme-status/subscribers"


async def subscribers_of(api, account, path: str = SUBSCRIBERS, **params):
    response = await api.get(path, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_it_mails_a_confirmation_link_and_confirming_makes_the_subscription_active(
    api, world, visitor, smtp, database
):
    await create_page(api, world.alice)
    response = await visitor.post(SUBSCRIBE, json={"email": "Jane@Example.com"})
    assert response.status_code == 202, response.text
    assert "confirmation link" in response.json()["message"]
    [mail] = smtp.messages
    assert smtp.envelopes[0].rcpt_tos == ["jane@example.com"]
    assert mail["Subject"] == "[Acme Status] Confirm your subscription"
    token = confirm_token(mail)
    assert len(token) >= 22  # 128+ random bits, url-safe
    assert f"{'https://status.traxo.example.com'}/status/acme-status/subscribe/confirm?token=" in str(
        mail.get_content()
    )
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    async with database.session() as session:
        row = await session.scalar(select(PageSubscriber))
        assert row is not None and row.confirm_token_hash == token_hash(token)  # kept hashed only
        assert token not in (row.confirm_token_hash or "")

    [listed] = (await subscribers_of(api, world.alice))["data"]
    assert (listed["email"], listed["confirmed"], listed["components"]) == ("jane@example.com", False, [])

    confirmed = await visitor.get(CONFIRM, params={"token": token})
    assert confirmed.status_code == 200
    assert confirmed.headers["content-type"].startswith("text/html")
    assert "Subscription confirmed" in confirmed.text
    assert "default-src 'none'" in confirmed.headers["content-security-policy"]
    [listed] = (await subscribers_of(api, world.alice))["data"]
    assert listed["confirmed"] is True and listed["confirmedAt"] is not None

    again = await visitor.get(CONFIRM, params={"token": token})  # a used link is spent
    assert again.status_code == 400 and "not valid" in again.text


async def test_resubscribing_an_active_address_mails_nothing_and_answers_the_same(api, world, visitor, smtp):
    await create_page(api, world.alice)
    await subscribe(visitor, smtp, "jane@example.com")
    first = await visitor.post(SUBSCRIBE, json={"email": "someone@example.com"})
    again = await visitor.post(SUBSCRIBE, json={"email": "JANE@example.com"})
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json() == again.json()
    assert len(mails_to(smtp, "jane@example.com")) == 1  # only the first confirmation
    assert len(mails_to(smtp, "someone@example.com")) == 1


async def test_a_pending_address_subscribing_again_gets_a_new_link_and_the_old_one_stops(
    api, world, visitor, smtp
):
    await create_page(api, world.alice)
    assert (await visitor.post(SUBSCRIBE, json={"email": "jane@example.com"})).status_code == 202
    assert (await visitor.post(SUBSCRIBE, json={"email": "jane@example.com"})).status_code == 202
    old, new = (confirm_token(mail) for mail in mails_to(smtp, "jane@example.com"))
    assert old != new
    assert (await visitor.get(CONFIRM, params={"token": old})).status_code == 400
    assert (await visitor.get(CONFIRM, params={"token": new})).status_code == 200
    assert len((await subscribers_of(api, world.alice))["data"]) == 1


async def test_an_html_form_subscribes_to_chosen_components_and_is_answered_with_html(
    api, world, visitor, smtp, database
):
    api_id = (await insert_monitor(database, world.org_a, name="API")).id
    web_id = (await insert_monitor(database, world.org_a, name="Web")).id
    page = await create_page(api, world.alice, monitors=[api_id, web_id])
    web = page["components"][1]["id"]
    response = await visitor.post(
        SUBSCRIBE,
        content=f"email=jane%40example.com&components={web}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 202
    assert response.headers["content-type"].startswith("text/html")
    assert "Check your inbox" in response.text
    [listed] = (await subscribers_of(api, world.alice))["data"]
    assert listed["components"] == [web]

    refused = await visitor.post(
        SUBSCRIBE,
        content="email=not-an-address",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("text/html")
    assert "email: must be a valid email address" in refused.text


async def test_it_rejects_components_of_other_pages_and_bad_bodies_naming_the_field(
    api, world, mailing_app, smtp, database
):
    addresses = iter(range(1, 100))

    async def post(**request):  # each from an address of its own: five a minute each
        async with client_of(mailing_app, f"192.0.2.{next(addresses)}") as client:
            return await client.post(SUBSCRIBE, **request)

    api_id = (await insert_monitor(database, world.org_a, name="API")).id
    page = await create_page(api, world.alice, monitors=[api_id])
    other = await create_page(api, world.alice, slug="other", monitors=[api_id])
    foreign = other["components"][0]["id"]
    response = await post(
        json={"email": "jane@example.com", "components": [page["components"][0]["id"], foreign]}
    )
    assert response.status_code == 400
    assert response.json() == {"error": f"components: not components of this page: {foreign}"}
    for body, field in (
        ({"email": "nope"}, "email"),
        ({}, "email"),
        ({"email": "jane@example.com", "extra": 1}, "extra"),
        ({"email": "jane@example.com", "components": "spc_1"}, "components"),
        ({"email": None}, "email"),
    ):
        refused = await post(json=body)
        assert refused.status_code == 400, body
        assert refused.json()["error"].startswith(f"{field}:"), refused.json()
    not_json = await post(content="{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json() == {"error": "Request body is not valid JSON"}
    plain = await post(content="jane@example.com", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 400 and plain.json()["error"].startswith("Content-Type:")
    assert smtp.messages == []


async def test_a_private_or_unknown_page_is_a_404_and_mails_nothing(api, world, visitor, smtp):
    await create_page(api, world.alice, isPublic=False)
    for slug in ("acme-status", "nowhere"):
        response = await visitor.post(f"/status/{slug}/subscribe", json={"email": "jane@example.com"})
        assert response.status_code == 404
        assert response.json() == {"error": "No public status page has this slug"}
        assert (
            await visitor.get(f"/status/{slug}/subscribe/confirm", params={"token": "x"})
        ).status_code == 404
        assert (await visitor.get(f"/status/{slug}/unsubscribe", params={"token": "x"})).status_code == 404
    assert smtp.messages == []


async def test_an_expired_or_invalid_confirmation_token_is_refused(api, world, visitor, smtp, clock):
    await create_page(api, world.alice)
    assert (await visitor.post(SUBSCRIBE, json={"email": "jane@example.com"})).status_code == 202
    token = confirm_token(smtp.messages[0])
    for wrong in ("", "garbage", token[:-1]):
        response = await visitor.get(CONFIRM, params={"token": wrong})
        assert response.status_code == 400 and "not valid" in response.text
    clock.advance(timedelta(hours=48, seconds=1))
    assert (await visitor.get(CONFIRM, params={"token": token})).status_code == 400
    [listed] = (await subscribers_of(api, world.alice))["data"]
    assert listed["confirmed"] is False


async def test_the_unsubscribe_link_ends_the_subscription_at_once(api, world, visitor, smtp):
    await create_page(api, world.alice)
    await subscribe(visitor, smtp, "jane@example.com")
    await subscribe(visitor, smtp, "joe@example.com")
    jane = unsubscribe_token(mails_to(smtp, "jane@example.com")[0])
    joe = unsubscribe_token(mails_to(smtp, "joe@example.com")[0])
    assert str(mails_to(smtp, "jane@example.com")[0]["List-Unsubscribe"]) == (
        f"<https://status.traxo.example.com/status/acme-status/unsubscribe?token={jane}>"
    )

    # Following the link (as a mail scanner does) changes nothing: its page's button posts.
    page = await visitor.get(UNSUBSCRIBE, params={"token": jane})
    assert page.status_code == 200 and '<form method="post" action="?token=' in page.text
    assert len((await subscribers_of(api, world.alice))["data"]) == 2
    response = await visitor.post(UNSUBSCRIBE, params={"token": jane})
    assert response.status_code == 200 and "Unsubscribed" in response.text
    # RFC 8058: the mail client posts List-Unsubscribe=One-Click to the same link.
    one_click = await visitor.post(
        UNSUBSCRIBE,
        params={"token": joe},
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200
    assert (await subscribers_of(api, world.alice))["data"] == []
    assert (await visitor.get(UNSUBSCRIBE, params={"token": jane})).status_code == 400  # already gone
    assert (await visitor.post(UNSUBSCRIBE, params={"token": jane})).status_code == 400
    assert (await visitor.get(UNSUBSCRIBE, params={"token": "made-up"})).status_code == 400


async def test_subscribing_is_rate_limited_per_address_and_per_page(api, world, mailing_app, smtp):
    await create_page(api, world.alice)
    async with client_of(mailing_app, "203.0.113.1") as client:
        for number in range(5):
            response = await client.post(SUBSCRIBE, json={"email": f"a{number}@example.com"})
            assert response.status_code == 202
        refused = await client.post(SUBSCRIBE, json={"email": "a5@example.com"})
        assert refused.status_code == 429
        assert refused.json()["error"].startswith("Rate limit exceeded")
        assert int(refused.headers["retry-after"]) >= 1
    # Many addresses, one page: 30 a minute in all (25 more from five others, then no more).
    for address in range(2, 8):
        async with client_of(mailing_app, f"203.0.113.{address}") as client:
            for number in range(5):
                response = await client.post(SUBSCRIBE, json={"email": f"b{address}-{number}@example.com"})
                assert response.status_code == (202 if address < 7 else 429), (address, number)
    assert len(smtp.messages) == 30


async def test_owners_list_and_delete_subscribers_of_their_own_pages(api, world, visitor, smtp):
    await create_page(api, world.alice)
    for number in range(3):
        assert (await visitor.post(SUBSCRIBE, json={"email": f"s{number}@example.com"})).status_code == 202
    first = await subscribers_of(api, world.alice, page=1, limit=2)
    assert first["pagination"] == {"page": 1, "limit": 2, "total": 3, "totalPages": 2}
    assert [s["email"] for s in first["data"]] == ["s2@example.com", "s1@example.com"]
    assert set(first["data"][0]) == {"id", "email", "components", "confirmed", "confirmedAt", "createdAt"}
    second = await subscribers_of(api, world.alice, page=2, limit=2)
    assert [s["email"] for s in second["data"]] == ["s0@example.com"]
    assert len((await subscribers_of(api, world.vera))["data"]) == 3  # a VIEWER reads

    victim = first["data"][0]["id"]
    assert (await api.get(SUBSCRIBERS, headers=world.bob.headers)).status_code == 404
    assert (await api.delete(f"{SUBSCRIBERS}/{victim}", headers=world.bob.headers)).status_code == 404
    forbidden = await api.delete(f"{SUBSCRIBERS}/{victim}", headers=world.vera.headers)
    assert forbidden.status_code == 403
    assert (await api.get(SUBSCRIBERS)).status_code == 401
    assert (await api.get(SUBSCRIBERS, params={"limit": 0}, headers=world.alice.headers)).status_code == 400

    deleted = await api.delete(f"{SUBSCRIBERS}/{victim}", headers=world.adam.headers)
    assert deleted.status_code == 200 and deleted.json() == {"message": "Subscriber deleted successfully"}
    assert (await api.delete(f"{SUBSCRIBERS}/{victim}", headers=world.alice.headers)).status_code == 404
    assert [s["email"] for s in (await subscribers_of(api, world.alice))["data"]] == [
        "s1@example.com",
        "s0@example.com",
    ]

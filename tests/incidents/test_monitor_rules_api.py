"""The incident rules in a monitor's config, through the API: what the config alone cannot judge."""

from __future__ import annotations

import pytest

from tests.monitor_tools import create_monitor


async def _post(api, account, config, **fields):
    body = {
        "name": "Rules",
        "url": "https://api.example.com/health",
        "type": "HTTP",
        "config": config,
        **fields,
    }
    return await api.post("/api/monitors", json=body, headers=account.headers)


async def test_the_rules_are_stored_and_shown(api, world):
    dependency = await create_monitor(api, world.alice, name="router")
    rules = {
        "confirmations": 3,
        "recoveries": 2,
        "failureRate": {"percent": 50, "windowMinutes": 10},
        "flapThreshold": 4,
        "dependsOn": [dependency["id"]],
    }
    response = await _post(api, world.alice, rules)
    assert response.status_code == 201, response.text
    assert response.json()["data"]["config"] == rules


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"confirmations": 0}, "config.confirmations"),
        ({"recoveries": 21}, "config.recoveries"),
        ({"failureRate": {"percent": 150, "windowMinutes": 10}}, "config.failureRate.percent"),
        ({"failureRate": {"percent": 50}}, "config.failureRate.windowMinutes"),
        ({"flapThreshold": "5"}, "config.flapThreshold"),
        ({"dependsOn": "mon_x"}, "config.dependsOn"),
        ({"dependsOn": ["mon_nonexistent"]}, "config.dependsOn"),
        ({"regionQuorum": 2}, "config.regionQuorum"),  # the monitor has one region
    ],
)
async def test_bad_rules_are_a_400_naming_the_field(api, world, config, named):
    response = await _post(api, world.alice, config)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(named), response.json()


async def test_a_dependency_must_be_of_the_same_organization_and_not_itself(api, world):
    theirs = await create_monitor(api, world.bob, name="theirs")
    response = await _post(api, world.alice, {"dependsOn": [theirs["id"]]})
    assert response.status_code == 400
    assert "no monitor" in response.json()["error"]
    mine = await create_monitor(api, world.alice, name="mine")
    response = await api.put(
        f"/api/monitors/{mine['id']}",
        json={"config": {"dependsOn": [mine["id"]]}},
        headers=world.alice.headers,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "config.dependsOn: a monitor cannot depend on itself"


async def test_deleting_a_monitor_takes_it_out_of_what_depends_on_it(api, world):
    # Found by `traxo export`: a deleted dependency stayed in dependsOn, and the exported file
    # named a monitor that no longer exists (applying it back then failed).
    router = await create_monitor(api, world.alice, name="router")
    switch = await create_monitor(api, world.alice, name="switch")
    app = (await _post(api, world.alice, {"dependsOn": [router["id"], switch["id"]]})).json()["data"]
    lone = (await _post(api, world.alice, {"dependsOn": [router["id"]], "confirmations": 3})).json()["data"]
    other = await create_monitor(api, world.bob, name="elsewhere")

    assert (await api.delete(f"/api/monitors/{router['id']}", headers=world.alice.headers)).status_code == 200

    def read(monitor, account):
        return api.get(f"/api/monitors/{monitor['id']}", headers=account.headers)

    after = (await read(app, world.alice)).json()["data"]
    assert after["config"]["dependsOn"] == [switch["id"]]
    assert (await read(lone, world.alice)).json()["data"]["config"] == {"confirmations": 3}
    assert (await read(other, world.bob)).json()["data"]["config"] == other["config"]
    # What is left saves again as it reads (the list still validates).
    put = await api.put(
        f"/api/monitors/{app['id']}", json={"config": after["config"]}, headers=world.alice.headers
    )
    assert put.status_code == 200, put.text

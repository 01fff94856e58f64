"""Deployment pages without a browser: routes with their shares and engine states, policies, revisions, and
the promote and rollback forms that only maintainers see and only this site may post."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmops.api.app import create_app
from llmops.platform import Platform
from llmops.security.actor import local_admin
from llmops.settings import Settings
from tests.registry import factory


@dataclass
class Site:
    client: TestClient
    platform: Platform
    keys: dict[str, str]

    def get(self, path: str, role: str = "viewer") -> Any:
        headers = {"Accept": "text/html", "Authorization": f"Bearer {self.keys[role]}"}
        return self.client.get(path, headers=headers, follow_redirects=False)

    def post(self, path: str, data: dict[str, str], role: str = "maintainer", **headers: str) -> Any:
        auth = {"Accept": "text/html", "Authorization": f"Bearer {self.keys[role]}", **headers}
        return self.client.post(path, data=data, headers=auth, follow_redirects=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("ui-deployments")
    platform = Platform(Settings(home=root / "home"))
    admin = local_admin(via="cli")
    base = factory.make_causal_lm(root / "base", "llama")
    other = factory.make_causal_lm(root / "other", "llama", tokenizer_dir=base, seed=11)
    platform.registry.import_model(admin, base, name="lm")
    platform.registry.import_model(admin, other, name="lm")
    platform.deployments.deploy(admin, "chat", model="lm:1", description="<b>the chat model</b>")
    platform.deployments.set_route(admin, "chat", mode="canary", model="lm:2", percent=15)
    keys = {}
    for role in ("viewer", "maintainer"):
        platform.security.create_principal(admin, role, role=role)
        keys[role] = platform.security.create_key(admin, principal=role).key
    with TestClient(create_app(platform=platform)) as client:
        yield Site(client, platform, keys)
    platform.close()


def test_list_and_page_show_routes_shares_and_revisions(site: Site) -> None:
    listing = site.get("/deployments")
    assert listing.status_code == 200
    row = re.search(r'data-testid="deployment-row" data-deployment="chat".*?</tr>', listing.text, re.S)
    assert row and "lm:1" in row.group(0) and "15 %" in row.group(0)
    page = site.get("/deployments/chat")
    assert page.status_code == 200
    assert "&lt;b&gt;the chat model&lt;/b&gt;" in page.text  # free text is escaped
    canary = re.search(r'data-route="canary".*?</tr>', page.text, re.S)
    assert canary and "lm:2" in canary.group(0) and "15 % of users" in canary.group(0)
    assert re.search(r'data-testid="engine-state">(loading|ready|not loaded)', page.text)
    revisions = re.findall(r'data-testid="revision-row" data-revision="(\d+)"', page.text)
    assert revisions == ["2", "1"]
    assert 'data-testid="promote"' not in page.text and 'data-testid="rollback"' not in page.text  # viewer


def test_maintainers_promote_and_roll_back_from_the_page(site: Site) -> None:
    page = site.get("/deployments/chat", role="maintainer")
    assert 'data-testid="promote" data-route="canary"' in page.text and 'data-testid="rollback"' in page.text
    assert site.post("/deployments/chat/promote", {"route": "canary"}, role="viewer").status_code == 403
    foreign = site.post("/deployments/chat/promote", {"route": "canary"}, origin="http://evil.example")
    assert foreign.status_code == 403 and "posted from this site" in foreign.text
    assert site.platform.deployments.get("chat").revision == 2  # neither changed anything
    promoted = site.post("/deployments/chat/promote", {"route": "canary"})
    assert promoted.status_code == 303 and promoted.headers["location"] == "/deployments/chat"
    after = site.platform.deployments.get("chat")
    assert after.revision == 3 and [r.version for r in after.spec.routes] == ["lm:2"]
    rolled = site.post("/deployments/chat/rollback", {})
    assert rolled.status_code == 303
    assert {r.version for r in site.platform.deployments.get("chat").spec.routes} == {"lm:1", "lm:2"}
    back_to_first = site.post("/deployments/chat/rollback", {"to": "1"})
    assert back_to_first.status_code == 303
    latest = site.platform.deployments.revisions("chat")[0]
    assert latest.change == "rollback" and latest.reason == "rolled back in the web UI"
    assert [r.version for r in latest.spec.routes] == ["lm:1"]
    bad = site.post("/deployments/chat/rollback", {"to": "x"})
    assert bad.status_code == 422 and "revision must be a whole number" in bad.text


def test_errors_are_pages(site: Site, tmp_path: Path) -> None:
    assert site.get("/deployments/ghost").status_code == 404
    assert site.get("/deployments/bad..name").status_code == 422
    missing = site.post("/deployments/ghost/promote", {})
    assert missing.status_code == 404 and "llmops deploy ghost" in missing.text

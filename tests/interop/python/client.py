"""Case 5: the official Python MCP SDK client (`mcp`, its OAuthClientProvider)
signs in through the gateway and uses an app: discovery, dynamic
registration, PKCE, RFC 9207 `iss` checked by the SDK, then initialize,
tools/list, tools/call of echo and resources/list.

Usage: client.py MCP_URL. Prints one JSON line with what it saw; exits
non-zero on any failure. The browser part (following redirects through the
gateway, the identity provider and the consent page) is scripted here.
"""

import asyncio
import json
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT = "http://127.0.0.1:53683/callback"


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class ScriptedBrowser:
    """Follows the authorization URL hop by hop with a cookie jar, approving consent."""

    def __init__(self) -> None:
        self.url: str | None = None

    async def open(self, url: str) -> None:
        self.url = url

    async def callback(self) -> AuthorizationCodeResult:
        assert self.url, "the SDK never opened an authorization URL"
        url = self.url
        async with httpx2.AsyncClient(follow_redirects=False, timeout=15) as http:
            for _ in range(20):
                if url.startswith(REDIRECT):
                    q = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
                    if "error" in q:
                        raise RuntimeError(f"authorization failed: {q}")
                    return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))
                r = await http.get(url)
                if 300 <= r.status_code < 400:
                    url = urljoin(url, r.headers["location"])
                    continue
                if r.status_code == 200 and 'id="consent"' in r.text:
                    form = r.text[r.text.index('id="consent"') :]
                    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
                    fields["decision"] = "approve"
                    action = re.search(r'action="([^"]+)"', r.text[r.text.rindex("<form", 0, r.text.index('id="consent"')) :]).group(1)
                    post = await http.post(urljoin(url, action), data=fields)
                    assert post.status_code == 302, f"consent answered {post.status_code}: {post.text[:200]}"
                    url = urljoin(url, post.headers["location"])
                    continue
                raise RuntimeError(f"sign-in stopped at {url}: {r.status_code} {r.text[:300]}")
        raise RuntimeError("too many redirects")


async def main(mcp_url: str) -> None:
    browser = ScriptedBrowser()
    storage = MemoryStorage()
    auth = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="drio interop (Python SDK)",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
        async with streamable_http_client(mcp_url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = [t.name for t in (await session.list_tools()).tools]
                echo = await session.call_tool("echo", {"message": "from python"})
                resources = (await session.list_resources()).resources
    text = echo.content[0].text if echo.content else ""
    result = {
        "registered": storage.client is not None and bool(storage.client.client_id),
        "has_refresh_token": bool(storage.tokens and storage.tokens.refresh_token),
        "tools": tools,
        "echo": text,
        "resources": len(resources),
    }
    print(json.dumps(result))
    assert result["registered"], "no dynamic registration"
    assert "echo" in tools, tools
    assert "from python" in text, text
    assert result["resources"] > 0


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

// A scripted browser: follows redirects one hop at a time with a cookie
// jar, through the gateway, the identity provider's interactions, the
// gateway callback and its consent page, until it reaches the client's
// redirect URI. It submits the consent form as a person clicking "Allow".
export class Browser {
  constructor() {
    this.jar = new Map(); // host -> Map(name -> value)
    this.hops = [];
  }

  cookieHeader(url) {
    const cookies = this.jar.get(new URL(url).host);
    return cookies ? [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') : '';
  }

  store(url, res) {
    const host = new URL(url).host;
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (!this.jar.has(host)) this.jar.set(host, new Map());
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(line)) this.jar.get(host).delete(name);
      else this.jar.get(host).set(name, value);
    }
  }

  async request(url, { method = 'GET', form } = {}) {
    const headers = { cookie: this.cookieHeader(url) };
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.store(url, res);
    this.hops.push(`${method} ${url.split('?')[0]} -> ${res.status}`);
    return { res, text: await res.text() };
  }

  /**
   * From an authorization URL to the client's redirect URI; returns the
   * query the client receives there.
   */
  async authorize(authorizationUrl, redirectUri) {
    let url = authorizationUrl.toString();
    for (let i = 0; i < 20; i++) {
      if (url.startsWith(redirectUri)) return Object.fromEntries(new URL(url).searchParams);
      const { res, text } = await this.request(url);
      if (res.status >= 300 && res.status < 400) {
        url = new URL(res.headers.get('location'), url).toString();
        continue;
      }
      if (res.status === 200 && text.includes('id="consent"')) {
        url = await this.approve(url, text);
        continue;
      }
      throw new Error(`sign-in stopped at ${url}: ${res.status} ${text.slice(0, 300)}\nhops:\n${this.hops.join('\n')}`);
    }
    throw new Error(`too many redirects:\n${this.hops.join('\n')}`);
  }

  /** Submits the gateway's consent form with decision=approve; returns where it redirects. */
  async approve(pageUrl, html) {
    const form = html.slice(html.indexOf('id="consent"'));
    const action = /action="([^"]+)"/.exec(html.slice(html.lastIndexOf('<form', html.indexOf('id="consent"'))))[1];
    const fields = {};
    for (const m of form.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[m[1]] = m[2];
    fields.decision = 'approve';
    const target = new URL(action, pageUrl).toString();
    const { res, text } = await this.request(target, { method: 'POST', form: fields });
    if (res.status !== 302) throw new Error(`consent answered ${res.status}: ${text.slice(0, 300)}`);
    return new URL(res.headers.get('location'), target).toString();
  }
}
